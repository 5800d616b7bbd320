/* What a C host must be able to count on, one check per mode; built and
 * run by tests/c_hosts.rs. Usage: hosts MODE URL DIR (DIR holds a.bin and
 * big.bin, mapped as internal://mass/). Exits 0 and prints "MODE ok" when
 * the check holds; a signal (SIGPIPE) or the 60 s alarm ends it otherwise.
 *
 *   sigpipe    uploads to a server that resets them, with SIGPIPE's default
 *              disposition: the host must not die
 *   free       frees clients with uploads in flight and callbacks queued:
 *              threads and descriptors return to where they were
 *   handles    freed clients and released tasks stay invalid, whatever is
 *              made after them
 *   reentrant  ut_client_dispatch from inside callbacks returns at once
 *   crlf       a URL with CR, LF or TAB fails with 202
 *   engines    a client with several engines (engines in the config) */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "uploadtask.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } } while (0)

typedef struct counts {
    int successes, fails, completes, progress, reentrant, last_fail_code;
    ut_client *client;
} counts;

static void on_success(void *user, uint16_t status, const char *data, const char *headers) {
    (void)status; (void)data; (void)headers;
    ((counts *)user)->successes++;
}
static void on_fail(void *user, const char *data, uint32_t code) {
    if (getenv("UT_DEBUG")) fprintf(stderr, "fail %u %s\n", code, data);
    counts *c = user;
    c->fails++;
    c->last_fail_code = (int)code;
}
static void on_complete(void *user) {
    counts *c = user;
    c->completes++;
    /* A dispatch from inside a callback returns at once, never hangs. */
    if (c->client != NULL && ut_client_dispatch(c->client) == UT_ERR_REENTRANT) c->reentrant++;
}
static void sleep_ms(long ms);
static void on_progress(void *user, uint32_t p, uint64_t sent, uint64_t total) {
    (void)p; (void)sent; (void)total;
    counts *c = user;
    c->progress++;
    if (c->client == NULL) return;
    /* Let more events of this upload queue up behind this one. */
    sleep_ms(20);
    if (ut_client_dispatch(c->client) == UT_ERR_REENTRANT) c->reentrant++;
    if (ut_client_dispatch_timeout(c->client, 10) == UT_ERR_REENTRANT) c->reentrant++;
}

static int count_entries(const char *path) {
    DIR *dir = opendir(path);
    CHECK(dir != NULL, "opendir %s", path);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n - (strcmp(path, "/proc/self/fd") == 0); /* the directory's own */
}
static int threads(void) { return count_entries("/proc/self/task"); }
static int fds(void) { return count_entries("/proc/self/fd"); }

static void sleep_ms(long ms) {
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static ut_client *client_for(const char *dir, uint32_t engines) {
    char roots[1024];
    snprintf(roots, sizeof roots, "{\"mass\": \"%s\"}", dir);
    ut_client_config config = { .roots_json = roots, .engines = engines };
    ut_client *client = ut_client_new(&config);
    CHECK(client != NULL, "ut_client_new");
    return client;
}

static char *options(const char *url, const char *file) {
    static char json[2048];
    snprintf(json, sizeof json, "{\"url\": \"%s\", \"filePath\": \"internal://mass/%s\", \"name\": \"f\"}", url, file);
    return json;
}

/* Dispatches until `n` uploads completed (60 s at most). */
static void wait_completes(ut_client *client, counts *c, int n) {
    for (int rounds = 0; c->completes < n; rounds++) {
        CHECK(rounds < 600, "%d of %d uploads completed within 60 s", c->completes, n);
        CHECK(ut_client_dispatch_timeout(client, 100) >= 0, "dispatch failed");
    }
}

static void sigpipe(const char *url, const char *dir) {
    signal(SIGPIPE, SIG_DFL);
    enum { N = 400 };
    ut_client *client = client_for(dir, 1);
    counts c = { 0 };
    ut_callbacks callbacks = { on_success, on_fail, on_complete, NULL, NULL };
    ut_task *tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = ut_upload_file(client, options(url, "big.bin"), &callbacks, &c);
    wait_completes(client, &c, N);
    CHECK(c.fails == N, "%d of %d failed", c.fails, N);
    for (int i = 0; i < N; i++) CHECK(ut_task_release(tasks[i]) == UT_OK, "release");
    CHECK(ut_client_free(client) == UT_OK, "free");
}

/* Waits (10 s at most) until threads and descriptors are back. */
static void wait_given_back(int threads_before, int fds_before) {
    for (int rounds = 0; threads() != threads_before || fds() != fds_before; rounds++) {
        CHECK(rounds < 1000, "threads %d (were %d), descriptors %d (were %d)",
              threads(), threads_before, fds(), fds_before);
        sleep_ms(10);
    }
}

static void free_mode(const char *url, const char *dir) {
    enum { N = 200 };
    static ut_task *tasks[N];
    static counts c;
    int threads_before = threads(), fds_before = fds();
    ut_callbacks callbacks = { on_success, on_fail, on_complete, on_progress, NULL };
    /* Tasks released first, then the client freed with callbacks queued. */
    ut_client *client = client_for(dir, 1);
    for (int i = 0; i < N; i++) tasks[i] = ut_upload_file(client, options(url, i % 2 ? "a.bin" : "big.bin"), &callbacks, &c);
    for (int i = 0; i < N / 2; i++) ut_client_dispatch_timeout(client, 1);
    for (int i = 0; i < N; i++) CHECK(ut_task_release(tasks[i]) == UT_OK, "release");
    CHECK(ut_client_free(client) == UT_OK, "free");
    wait_given_back(threads_before, fds_before);
    /* The client freed first, its tasks released later. */
    client = client_for(dir, 2);
    for (int i = 0; i < N; i++) tasks[i] = ut_upload_file(client, options(url, i % 2 ? "a.bin" : "big.bin"), &callbacks, &c);
    sleep_ms(50);
    CHECK(ut_client_free(client) == UT_OK, "free");
    CHECK(ut_client_dispatch(client) == UT_ERR_INVALID_HANDLE, "a freed client dispatches nothing");
    CHECK(ut_task_abort(tasks[0]) == UT_OK, "a task outlives its freed client");
    for (int i = 0; i < N; i++) CHECK(ut_task_release(tasks[i]) == UT_OK, "release");
    wait_given_back(threads_before, fds_before);
}

static void handles(const char *url, const char *dir) {
    enum { ROUNDS = 300 };
    static ut_client *old_clients[ROUNDS];
    static ut_task *old_tasks[ROUNDS];
    ut_client *live = client_for(dir, 1);
    counts c = { 0 };
    ut_callbacks callbacks = { on_success, on_fail, on_complete, NULL, NULL };
    for (int i = 0; i < ROUNDS; i++) {
        old_clients[i] = client_for(dir, 1);
        CHECK(ut_client_free(old_clients[i]) == UT_OK, "free");
        old_tasks[i] = ut_upload_file(live, options(url, "a.bin"), &callbacks, &c);
        CHECK(old_tasks[i] != NULL, "upload");
        CHECK(ut_task_release(old_tasks[i]) == UT_OK, "release");
    }
    /* Made after every free: none may answer to an old handle, and no
     * handle was ever given twice. */
    ut_client *newer = client_for(dir, 1);
    ut_task *newer_task = ut_upload_file(live, options(url, "a.bin"), &callbacks, &c);
    for (int i = 0; i < ROUNDS; i++) {
        for (int j = 0; j < i; j++) {
            CHECK(old_clients[i] != old_clients[j], "client handle %d came back as %d", j, i);
            CHECK(old_tasks[i] != old_tasks[j], "task handle %d came back as %d", j, i);
        }
        CHECK(old_tasks[i] != newer_task, "task handle %d came back", i);
        CHECK(old_clients[i] != newer && old_clients[i] != live, "a handle came back");
        CHECK(ut_client_free(old_clients[i]) == UT_ERR_INVALID_HANDLE, "double free of client %d", i);
        CHECK(ut_client_event_fd(old_clients[i]) == UT_ERR_INVALID_HANDLE, "event fd of a freed client");
        CHECK(ut_task_abort(old_tasks[i]) == UT_ERR_INVALID_HANDLE, "abort of released task %d", i);
        CHECK(ut_task_release(old_tasks[i]) == UT_ERR_INVALID_HANDLE, "double release of task %d", i);
    }
    wait_completes(live, &c, ROUNDS + 1);
    CHECK(c.successes == ROUNDS + 1, "%d successes", c.successes);
    CHECK(ut_task_release(newer_task) == UT_OK, "release");
    CHECK(ut_client_free(newer) == UT_OK && ut_client_free(live) == UT_OK, "free");
}

static void reentrant(const char *url, const char *dir) {
    ut_client *client = client_for(dir, 1);
    counts c = { 0 };
    c.client = client;
    ut_callbacks callbacks = { on_success, on_fail, on_complete, on_progress, NULL };
    ut_task *task = ut_upload_file(client, options(url, "big.bin"), &callbacks, &c);
    wait_completes(client, &c, 1);
    CHECK(c.successes == 1, "the upload succeeded (%d fails)", c.fails);
    CHECK(c.progress > 0 && c.reentrant == 2 * c.progress + 1, "%d refusals for %d progress events",
          c.reentrant, c.progress);
    CHECK(ut_task_release(task) == UT_OK && ut_client_free(client) == UT_OK, "release, free");
}

static void crlf(const char *url, const char *dir) {
    ut_client *client = client_for(dir, 1);
    counts c = { 0 };
    ut_callbacks callbacks = { on_success, on_fail, on_complete, NULL, NULL };
    const char *tails[] = { "\\r\\nX-Injected: 1", "\\nX: 1", "\\tx", "\\r" };
    for (int i = 0; i < 4; i++) {
        char json[2048];
        snprintf(json, sizeof json, "{\"url\": \"%s%s\", \"filePath\": \"internal://mass/a.bin\", \"name\": \"f\"}",
                 url, tails[i]);
        ut_task *task = ut_upload_file(client, json, &callbacks, &c);
        wait_completes(client, &c, i + 1);
        CHECK(c.fails == i + 1 && c.last_fail_code == 202, "url %d: code %d", i, c.last_fail_code);
        ut_task_release(task);
    }
    CHECK(ut_client_free(client) == UT_OK, "free");
}

static void engines(const char *url, const char *dir) {
    enum { N = 100 };
    int threads_before = threads();
    ut_client *client = client_for(dir, 4);
    CHECK(threads() >= threads_before + 4, "4 engine threads (%d threads, were %d)", threads(), threads_before);
    counts c = { 0 };
    ut_callbacks callbacks = { on_success, on_fail, on_complete, NULL, NULL };
    ut_task *tasks[N];
    for (int i = 0; i < N; i++) tasks[i] = ut_upload_file(client, options(url, "a.bin"), &callbacks, &c);
    wait_completes(client, &c, N);
    CHECK(c.successes == N, "%d successes", c.successes);
    for (int i = 0; i < N; i++) ut_task_release(tasks[i]);
    CHECK(ut_client_free(client) == UT_OK, "free");
}

int main(int argc, char **argv) {
    CHECK(argc == 4, "usage: hosts MODE URL DIR");
    const char *mode = argv[1], *url = argv[2], *dir = argv[3];
    alarm(60); /* a hang ends the program */
    if (strcmp(mode, "sigpipe") == 0) sigpipe(url, dir);
    else if (strcmp(mode, "free") == 0) free_mode(url, dir);
    else if (strcmp(mode, "handles") == 0) handles(url, dir);
    else if (strcmp(mode, "reentrant") == 0) reentrant(url, dir);
    else if (strcmp(mode, "crlf") == 0) crlf(url, dir);
    else if (strcmp(mode, "engines") == 0) engines(url, dir);
    else CHECK(0, "unknown mode %s", mode);
    printf("%s ok\n", mode);
    return 0;
}
