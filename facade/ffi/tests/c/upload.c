/* The C API end to end: built and run by tests/c_program.rs against the
 * loopback receiver. Usage: upload URL DIR [S3_ENDPOINT] (DIR holds a.bin
 * and big.bin, mapped as internal://mass/; with an S3 endpoint, big.bin
 * also goes to s3://cbucket/big.bin there, in parts). Exits 0 when every check holds; prints what
 * failed otherwise. Uses epoll on the client's event descriptor, as a host
 * event loop would. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "uploadtask.h"

#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } } while (0)

typedef struct result {
    int successes, fails, completes, progress_a, progress_b, heads;
    unsigned status;
    unsigned fail_code;
    char data[4096];
    char headers[4096];
    char fail_data[512];
    unsigned long long last_sent;
} result;

static void on_success(void *user, uint16_t status, const char *data, const char *headers) {
    result *r = user;
    r->successes++;
    r->status = status;
    snprintf(r->data, sizeof r->data, "%s", data);
    snprintf(r->headers, sizeof r->headers, "%s", headers);
}
static void on_fail(void *user, const char *data, uint32_t code) {
    result *r = user;
    r->fails++;
    r->fail_code = code;
    snprintf(r->fail_data, sizeof r->fail_data, "%s", data);
}
static void on_complete(void *user) { ((result *)user)->completes++; }
static void on_progress_a(void *user, uint32_t p, uint64_t sent, uint64_t total) {
    result *r = user;
    (void)p; (void)total;
    r->progress_a++;
    CHECK(sent >= r->last_sent, "progress went back");
    r->last_sent = sent;
}
static void on_progress_b(void *user, uint32_t p, uint64_t sent, uint64_t total) {
    (void)p; (void)sent; (void)total;
    ((result *)user)->progress_b++;
}
static void on_headers(void *user, uint16_t status, const char *headers) {
    (void)status; (void)headers;
    ((result *)user)->heads++;
}

/* The host loop: wait on the event descriptor, dispatch, until `done`. */
static void run_until(ut_client *client, int epfd, const int *done) {
    for (int rounds = 0; !*done; rounds++) {
        CHECK(rounds < 6000, "no outcome within 60 s");
        struct epoll_event ev;
        int n = epoll_wait(epfd, &ev, 1, 10);
        if (n > 0) CHECK(ut_client_dispatch(client) >= 0, "dispatch failed");
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 3 || argc == 4, "usage: upload URL DIR [S3_ENDPOINT]");
    const char *url = argv[1], *dir = argv[2];
    char roots[1024];
    snprintf(roots, sizeof roots, "{\"mass\": \"%s\"}", dir);
    ut_client_config config = { .roots_json = roots };
    ut_client *client = ut_client_new(&config);
    CHECK(client != NULL, "ut_client_new");
    int fd = ut_client_event_fd(client);
    CHECK(fd >= 0, "ut_client_event_fd");
    int epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
    CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl");
    ut_callbacks callbacks = { on_success, on_fail, on_complete, on_progress_a, on_headers };
    char options[2048];

    /* 1. An upload that succeeds, with header and formData; a second
     *    listener added then removed by id, a third kept. */
    result ok = {0};
    snprintf(options, sizeof options,
             "{\"url\": \"%s\", \"filePath\": \"internal://mass/a.bin\", \"name\": \"testImg\","
             " \"header\": {\"X-Token\": \"t\"}, \"formData\": {\"user\": \"42\"}, \"timeout\": 30000}", url);
    ut_task *task = ut_upload_file(client, options, &callbacks, &ok);
    CHECK(task != NULL, "ut_upload_file");
    uint64_t removed = ut_task_on_progress_update(task, on_progress_b, &ok);
    CHECK(removed != 0, "on_progress_update");
    CHECK(ut_task_off_progress_update(task, removed) == UT_OK, "off_progress_update(id)");
    run_until(client, epfd, &ok.completes);
    CHECK(ok.successes == 1 && ok.fails == 0 && ok.completes == 1, "outcome %d/%d/%d", ok.successes, ok.fails, ok.completes);
    CHECK(ok.status == 200, "status %u", ok.status);
    CHECK(strstr(ok.data, "\"name\":\"user\",\"value\":\"42\"") != NULL, "formData arrived: %s", ok.data);
    CHECK(strstr(ok.data, "\"field\":\"testImg\"") != NULL, "the file part arrived: %s", ok.data);
    CHECK(strstr(ok.data, "\"size\":100000") != NULL, "all of the file: %s", ok.data);
    CHECK(strstr(ok.headers, "\"content-type\"") != NULL, "headers as JSON: %s", ok.headers);
    CHECK(ok.progress_a > 0 && ok.last_sent > 100000, "progress %d, %llu", ok.progress_a, ok.last_sent);
    CHECK(ok.progress_b == 0, "a removed listener ran");
    CHECK(ok.heads == 1, "headers received %d", ok.heads);
    CHECK(ut_task_release(task) == UT_OK, "release");

    /* 2. abort() right after the call: fail("abort", 1000), then complete. */
    result aborted = {0};
    snprintf(options, sizeof options,
             "{\"url\": \"%s\", \"filePath\": \"internal://mass/big.bin\", \"name\": \"f\"}", url);
    task = ut_upload_file(client, options, &callbacks, &aborted);
    CHECK(ut_task_abort(task) == UT_OK, "abort");
    run_until(client, epfd, &aborted.completes);
    CHECK(aborted.fails == 1 && aborted.successes == 0, "abort outcome");
    CHECK(aborted.fail_code == 1000 && strcmp(aborted.fail_data, "abort") == 0, "abort: %s %u", aborted.fail_data, aborted.fail_code);
    CHECK(ut_task_off_progress_update(task, 0) == UT_OK, "off all");
    CHECK(ut_task_release(task) == UT_OK, "release");

    /* 3. Argument errors arrive as fail(…, 202): bad JSON, a missing file
     *    (300), a path outside the roots. */
    result bad = {0};
    task = ut_upload_file(client, "{not json", &callbacks, &bad);
    CHECK(task != NULL, "a task even for bad JSON");
    run_until(client, epfd, &bad.completes);
    CHECK(bad.fails == 1 && bad.fail_code == 202, "bad JSON: %u %s", bad.fail_code, bad.fail_data);
    ut_task_release(task);
    result missing = {0};
    snprintf(options, sizeof options,
             "{\"url\": \"%s\", \"filePath\": \"internal://mass/none.bin\", \"name\": \"f\"}", url);
    task = ut_upload_file(client, options, &callbacks, &missing);
    run_until(client, epfd, &missing.completes);
    CHECK(missing.fails == 1 && missing.fail_code == 300, "missing file: %u %s", missing.fail_code, missing.fail_data);
    ut_task_release(task);

    /* 4. Null and invalid handles are error codes, never a crash. */
    CHECK(ut_task_abort(NULL) == UT_ERR_NULL, "abort(NULL)");
    CHECK(ut_task_abort(task) == UT_ERR_INVALID_HANDLE, "abort(released)");
    CHECK(ut_task_release(task) == UT_ERR_INVALID_HANDLE, "double release");
    CHECK(ut_task_on_progress_update((ut_task *)0x1234, on_progress_b, NULL) == 0, "made-up task");
    CHECK(ut_client_dispatch((ut_client *)&ok) == UT_ERR_INVALID_HANDLE, "made-up client");
    CHECK(ut_upload_file(NULL, options, &callbacks, NULL) == NULL, "NULL client");
    CHECK(ut_client_event_fd(NULL) == UT_ERR_NULL, "event_fd(NULL)");

    /* 5. The blocking dispatch for simple hosts. */
    result simple = {0};
    snprintf(options, sizeof options,
             "{\"url\": \"%s\", \"filePath\": \"internal://mass/a.bin\", \"name\": \"f\"}", url);
    task = ut_upload_file(client, options, &callbacks, &simple);
    for (int i = 0; i < 600 && !simple.completes; i++) ut_client_dispatch_timeout(client, 100);
    CHECK(simple.successes == 1 && simple.status == 200, "dispatch_timeout");
    ut_task_release(task);

    /* 6. An S3 multipart upload: the same options JSON with an s3:// url. */
    if (argc == 4) {
        result s3 = {0};
        snprintf(options, sizeof options,
                 "{\"url\": \"s3://cbucket/big.bin\", \"filePath\": \"internal://mass/big.bin\","
                 " \"s3\": {\"endpoint\": \"%s\", \"anonymous\": true, \"parallel\": 4}}", argv[3]);
        task = ut_upload_file(client, options, &callbacks, &s3);
        CHECK(task != NULL, "ut_upload_file s3");
        run_until(client, epfd, &s3.completes);
        CHECK(s3.successes == 1 && s3.status == 200, "s3: %d successes, status %u, fail %u %s",
              s3.successes, s3.status, s3.fail_code, s3.fail_data);
        CHECK(strstr(s3.data, "CompleteMultipartUpload") != NULL, "s3 answer: %s", s3.data);
        CHECK(s3.last_sent == 64u << 20, "s3 progress ends at the size: %llu", s3.last_sent);
        ut_task_release(task);
    }

    CHECK(ut_client_free(client) == UT_OK, "free");
    CHECK(ut_client_free(client) == UT_ERR_INVALID_HANDLE, "double free");
    printf("all C API checks passed (%s)\n", ut_version());
    return 0;
}
