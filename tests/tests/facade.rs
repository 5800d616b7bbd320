//! The documented API end to end: callbacks, listeners, abort, fail codes,
//! the sandbox, dispatch on the host thread, and the Future.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use uploadtask::{Client, ClientConfig, Dispatch, EventQueue, ProgressUpdate, Roots, UploadOptions};
use uploadtask_cli::serve::{Receiver, ReceiverConfig, UploadSummary};
use uploadtask_tests::*;

/// What the callbacks of one task saw, in order.
#[derive(Default, Debug)]
struct Log {
    entries: Mutex<Vec<String>>,
}

impl Log {
    fn push(&self, entry: String) {
        self.entries.lock().unwrap().push(entry);
    }
    fn entries(&self) -> Vec<String> {
        self.entries.lock().unwrap().clone()
    }
}

fn logged(options: UploadOptions, log: &Arc<Log>) -> UploadOptions {
    let (a, b, c) = (Arc::clone(log), Arc::clone(log), Arc::clone(log));
    options
        .success(move |res| a.push(format!("success {}", res.status_code)))
        .fail(move |data, code| b.push(format!("fail {code} {data}")))
        .complete(move || c.push("complete".into()))
}

struct Fixture {
    receiver: Receiver,
    client: Client,
    root: TempDir,
    _cache: TempDir,
}

fn fixture(dispatch: Dispatch) -> Fixture {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let root = temp_dir("facade-mass");
    std::fs::create_dir_all(root.join("download")).unwrap();
    let cache = temp_dir("facade-cache");
    let roots = Roots::new().root("mass", root.path()).root("cache", cache.path());
    let client = Client::new(ClientConfig {
        roots,
        dispatch,
        ..Default::default()
    })
    .unwrap();
    Fixture {
        receiver,
        client,
        root,
        _cache: cache,
    }
}

impl Fixture {
    fn url(&self) -> String {
        format!("http://{}/upload", self.receiver.addr())
    }
}

#[test]
fn upload_through_the_documented_api() {
    let fx = fixture(Dispatch::EngineThread);
    let (_, digest) = make_file(&fx.root, "download/test.png", 300_000, 7);
    let log = Arc::new(Log::default());
    let progress = Arc::new(Mutex::new(Vec::<ProgressUpdate>::new()));
    let seen = Arc::clone(&progress);
    let late = Arc::new(Mutex::new(Vec::<ProgressUpdate>::new()));
    let late_seen = Arc::clone(&late);
    let task = fx.client.upload_file(logged(
        UploadOptions::new(fx.url(), "internal://mass/download/test.png", "testImg")
            .header("X-Token", "t")
            .form_data("user", "42")
            .form_data("lang", "中文")
            .on_progress_update(move |p| seen.lock().unwrap().push(*p)),
        &log,
    ));
    // A listener added after the call (as the seed's example does).
    task.on_progress_update(move |p| late_seen.lock().unwrap().push(*p));
    let response = task.wait().unwrap();
    assert_eq!(log.entries(), ["success 200", "complete"]);
    assert_eq!(response.status_code, 200);
    assert_eq!(response.header("content-type").as_deref(), Some("application/json"));
    let summary: UploadSummary = serde_json::from_str(&response.data).unwrap();
    assert_eq!(
        summary
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect::<Vec<_>>(),
        [("user", "42"), ("lang", "中文")]
    );
    assert_eq!(summary.files[0].filename, "test.png");
    assert_eq!(summary.files[0].field, "testImg");
    assert_eq!(summary.files[0].sha256, digest);
    let progress = progress.lock().unwrap();
    let total = progress.last().unwrap().total_bytes_expected_to_send;
    let engine_progress: Vec<_> = progress
        .iter()
        .map(|p| uploadtask_engine::Progress {
            progress: p.progress,
            total_bytes_sent: p.total_bytes_sent,
            total_bytes_expected_to_send: p.total_bytes_expected_to_send,
        })
        .collect();
    assert_progress_rules(&engine_progress, total);
    // The late listener saw a rising suffix of the same events.
    let late = late.lock().unwrap();
    assert!(late.windows(2).all(|w| w[0].total_bytes_sent < w[1].total_bytes_sent));
    assert!(late.iter().all(|p| progress.contains(p)));
    let json = serde_json::to_value(progress.last().unwrap()).unwrap();
    assert_eq!(json["progress"], 100);
    assert_eq!(json["totalBytesSent"], total);
    assert_eq!(json["totalBytesExpectedToSend"], total);
}

#[test]
fn abort_right_after_upload_file() {
    // Engine-thread dispatch; the peer answers only when told, so the
    // outcome cannot be dispatched before abort().
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "a.bin", 1000, 1);
    let (peer, go) = gated_peer();
    let log = Arc::new(Log::default());
    let task = fx.client.upload_file(logged(
        UploadOptions::new(peer.url("/"), "internal://mass/a.bin", "f"),
        &log,
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    task.on_progress_update(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    task.abort();
    let calls_at_abort = calls.load(Ordering::SeqCst);
    let _ = go.send(());
    let error = task.wait().unwrap_err();
    assert_eq!((error.code(), error.message.as_str()), (1000, "abort"));
    assert_eq!(log.entries(), ["fail 1000 abort", "complete"]);
    assert_eq!(calls.load(Ordering::SeqCst), calls_at_abort, "progress after abort");

    // Queue dispatch (a JS runtime): abort() before the host drains always
    // wins, however fast the upload is; no listener ever runs.
    let queue = EventQueue::new();
    let fx = fixture(Dispatch::Queue(queue.clone()));
    make_file(&fx.root, "a.bin", 1000, 1);
    let log = Arc::new(Log::default());
    let task = fx
        .client
        .upload_file(logged(UploadOptions::new(fx.url(), "internal://mass/a.bin", "f"), &log));
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&counter);
    task.on_progress_update(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    task.abort();
    for _ in 0..500 {
        queue.run_timeout(Duration::from_millis(20));
        if task.try_result().is_some() {
            break;
        }
    }
    assert_eq!(task.try_result().unwrap().unwrap_err().message, "abort");
    assert_eq!(log.entries(), ["fail 1000 abort", "complete"]);
    assert_eq!(counter.load(Ordering::SeqCst), 0);
}

#[test]
fn abort_from_inside_a_progress_callback_and_nothing_after_completion() {
    let stall = RawServer::start(|stream, stop| {
        idle_until_stopped(stop, Duration::from_secs(60));
        drop(stream);
    });
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "big.bin", 32 << 20, 2);
    let log = Arc::new(Log::default());
    let task = fx.client.upload_file(logged(
        UploadOptions::new(stall.url("/"), "internal://mass/big.bin", "f"),
        &log,
    ));
    let handle = task.clone();
    let after_abort = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&after_abort);
    let aborted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&aborted);
    task.on_progress_update(move |_| {
        if flag.swap(true, Ordering::SeqCst) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        handle.abort();
    });
    let error = task.wait().unwrap_err();
    assert_eq!(error.message, "abort");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(after_abort.load(Ordering::SeqCst), 0, "progress after abort");
    assert_eq!(log.entries(), ["fail 1000 abort", "complete"]);
    // abort() after completion changes nothing.
    task.abort();
    assert_eq!(log.entries().len(), 2);
}

/// A peer that reads a whole request, then answers only once told to.
fn gated_peer() -> (RawServer, std::sync::mpsc::Sender<()>) {
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let server = RawServer::start(move |mut stream, _| {
        let _ = read_request(&mut stream);
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(60));
        let _ = std::io::Write::write_all(
            &mut stream,
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        );
    });
    (server, go)
}

#[test]
fn removing_one_listener_keeps_the_other() {
    // Engine-thread dispatch: an event may reach a listener before `off`
    // (the upload runs on another thread), never after `off` returns.
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "l.bin", 2_000_000, 3);
    for remove_all in [false, true] {
        let (peer, go) = gated_peer();
        let task = fx
            .client
            .upload_file(UploadOptions::new(peer.url("/"), "internal://mass/l.bin", "f"));
        let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, b) = (Arc::clone(&first), Arc::clone(&second));
        let id = task.on_progress_update(move |_| {
            a.fetch_add(1, Ordering::SeqCst);
        });
        task.on_progress_update(move |_| {
            b.fetch_add(1, Ordering::SeqCst);
        });
        task.off_progress_update(if remove_all { None } else { Some(id) });
        let first_at_off = first.load(Ordering::SeqCst);
        let second_at_off = second.load(Ordering::SeqCst);
        go.send(()).unwrap();
        task.wait().unwrap();
        assert_eq!(
            first.load(Ordering::SeqCst),
            first_at_off,
            "removed listener ran after off"
        );
        if remove_all {
            assert_eq!(
                second.load(Ordering::SeqCst),
                second_at_off,
                "removed listener ran after off"
            );
        } else {
            assert!(second.load(Ordering::SeqCst) >= 1, "kept listener saw nothing");
        }
    }

    // Queue dispatch (a JS runtime): events run when the host drains, so the
    // seed's sequence on(cb), on(other), off(cb) means cb never runs.
    let queue = EventQueue::new();
    let fx = fixture(Dispatch::Queue(queue.clone()));
    make_file(&fx.root, "q.bin", 2_000_000, 4);
    let task = fx
        .client
        .upload_file(UploadOptions::new(fx.url(), "internal://mass/q.bin", "f"));
    let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, b) = (Arc::clone(&first), Arc::clone(&second));
    let cb = task.on_progress_update(move |_| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    task.on_progress_update(move |_| {
        b.fetch_add(1, Ordering::SeqCst);
    });
    task.off_progress_update(Some(cb));
    for _ in 0..500 {
        queue.run_timeout(Duration::from_millis(20));
        if task.try_result().is_some() {
            break;
        }
    }
    task.try_result().unwrap().unwrap();
    assert_eq!(first.load(Ordering::SeqCst), 0);
    assert!(second.load(Ordering::SeqCst) >= 1);
}

#[test]
fn every_fail_code_from_a_real_cause() {
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "ok.bin", 10, 4);
    std::fs::create_dir_all(fx.root.join("dir")).unwrap();
    let outside = temp_dir("outside");
    make_file(&outside, "secret.txt", 10, 5);
    std::os::unix::fs::symlink(outside.join("secret.txt"), fx.root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, fx.root.join("linkdir")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{port}/");
    let stall = RawServer::start(|stream, stop| {
        idle_until_stopped(stop, Duration::from_secs(60));
        drop(stream);
    });
    let url = fx.url();
    let cases: Vec<(UploadOptions, u32, &str)> = vec![
        (
            UploadOptions::new("", "internal://mass/ok.bin", "f"),
            202,
            "missing url",
        ),
        (UploadOptions::new(&url, "", "f"), 202, "missing filePath"),
        (
            UploadOptions::new(&url, "internal://mass/ok.bin", ""),
            202,
            "missing name",
        ),
        (
            UploadOptions::new("ftp://x/", "internal://mass/ok.bin", "f"),
            202,
            "unsupported url scheme",
        ),
        (
            UploadOptions::new(&url, "internal://mass/ok.bin", "f").header("X-A", "a\r\nb"),
            202,
            "invalid header value for \"X-A\"",
        ),
        (
            UploadOptions::new(&url, "internal://mass/ok.bin", "f").header("Content-Type", "text/plain"),
            202,
            "Content-Type",
        ),
        (
            UploadOptions::new(&url, "internal://mass/../ok.bin", "f"),
            202,
            "internal://mass/../ok.bin",
        ),
        (
            UploadOptions::new(&url, "internal://mass/%2e%2e/ok.bin", "f"),
            202,
            "'..'",
        ),
        (
            UploadOptions::new(&url, "internal://mass/a\\ok.bin", "f"),
            202,
            "backslash",
        ),
        (
            UploadOptions::new(&url, "internal://mass/ok\0.bin", "f"),
            202,
            "control character",
        ),
        (
            UploadOptions::new(&url, "internal://nowhere/ok.bin", "f"),
            202,
            "unknown root",
        ),
        (
            UploadOptions::new(&url, "internal://mass/link.txt", "f"),
            202,
            "escapes its root",
        ),
        (
            UploadOptions::new(&url, "internal://mass/linkdir/secret.txt", "f"),
            202,
            "escapes its root",
        ),
        (UploadOptions::new(&url, "/etc/hostname", "f"), 202, "only internal://"),
        (
            UploadOptions::new(&url, "internal://mass/missing.png", "f"),
            300,
            "file not found: internal://mass/missing.png",
        ),
        (
            UploadOptions::new(&url, "internal://mass/dir", "f"),
            300,
            "not a regular file: internal://mass/dir",
        ),
        (
            UploadOptions::new(&refused, "internal://mass/ok.bin", "f"),
            1000,
            " failed: Connection refused",
        ),
        (
            UploadOptions::new(stall.url("/"), "internal://mass/ok.bin", "f").timeout(Duration::from_millis(200)),
            204,
            "timeout: the overall timeout of 200 ms passed",
        ),
    ];
    for (options, code, message) in cases {
        let log = Arc::new(Log::default());
        let task = fx.client.upload_file(logged(options, &log));
        let error = task.wait().unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(error.message.contains(message), "{:?} lacks {message:?}", error.message);
        assert_eq!(
            log.entries(),
            [format!("fail {code} {}", error.message), "complete".into()]
        );
    }
    // 4xx and 5xx are successes.
    let server = RawServer::start(|mut stream, _| {
        let _ = read_head(&mut stream);
        let _ = std::io::Write::write_all(
            &mut stream,
            b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        );
    });
    let log = Arc::new(Log::default());
    let response = fx
        .client
        .upload_file(logged(
            UploadOptions::new(server.url("/"), "internal://mass/ok.bin", "f"),
            &log,
        ))
        .wait()
        .unwrap();
    assert_eq!((response.status_code, response.data.as_str()), (503, "busy"));
    assert_eq!(log.entries(), ["success 503", "complete"]);
}

#[test]
fn queue_dispatch_runs_callbacks_on_the_host_thread() {
    let queue = EventQueue::new();
    let fx = fixture(Dispatch::Queue(queue.clone()));
    make_file(&fx.root, "q.bin", 100_000, 6);
    let host = std::thread::current().id();
    let threads = Arc::new(Mutex::new(Vec::new()));
    let (t1, t2, t3) = (Arc::clone(&threads), Arc::clone(&threads), Arc::clone(&threads));
    let task = fx.client.upload_file(
        UploadOptions::new(fx.url(), "internal://mass/q.bin", "f")
            .success(move |_| t1.lock().unwrap().push(("success", std::thread::current().id())))
            .complete(move || t2.lock().unwrap().push(("complete", std::thread::current().id()))),
    );
    task.on_progress_update(move |_| t3.lock().unwrap().push(("progress", std::thread::current().id())));
    // Nothing runs until the host drains the queue; wait() from another thread.
    let waiter = {
        let task = task.clone();
        std::thread::spawn(move || task.wait().map(|r| r.status_code))
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        threads.lock().unwrap().is_empty(),
        "callbacks ran before the host drained the queue"
    );
    for _ in 0..500 {
        queue.run_timeout(Duration::from_millis(20));
        if threads.lock().unwrap().iter().any(|(what, _)| *what == "complete") {
            break;
        }
    }
    assert_eq!(waiter.join().unwrap().unwrap(), 200);
    let threads = threads.lock().unwrap();
    let order: Vec<&str> = threads.iter().map(|(what, _)| *what).collect();
    assert_eq!(order.last(), Some(&"complete"));
    assert_eq!(order[order.len() - 2], "success");
    assert!(order[..order.len() - 2].iter().all(|w| *w == "progress"));
    assert!(threads.iter().all(|(_, id)| *id == host));
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: the task is a Future usable without any runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..6000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    panic!("future did not complete");
}

#[test]
fn task_is_a_future_and_callbacks_may_start_uploads() {
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "f.bin", 5000, 8);
    let client = fx.client.clone();
    let url = fx.url();
    let (tx, rx) = std::sync::mpsc::channel();
    let task = fx.client.upload_file(
        UploadOptions::new(&url, "internal://mass/f.bin", "f").success(move |_| {
            // Starting another upload from inside a callback must not deadlock.
            let tx = tx.clone();
            client.upload_file(
                UploadOptions::new(url, "internal://mass/f.bin", "g").success(move |res| {
                    let _ = tx.send(res.status_code);
                }),
            );
        }),
    );
    let response = block_on(task.clone()).unwrap();
    assert_eq!(response.status_code, 200);
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), 200);
    assert_eq!(fx.receiver.uploads(), 2);
}

#[test]
fn options_from_the_documented_object_shape() {
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "o.txt", 10, 9);
    let json = format!(
        r#"{{"url":"{}","filePath":"internal://mass/o.txt","name":"doc","header":{{"X-A":"1"}},"formData":{{"n":1,"b":true,"s":"x"}},"timeout":60000}}"#,
        fx.url()
    );
    let options: UploadOptions = serde_json::from_str(&json).unwrap();
    let response = fx.client.upload_file(options).wait().unwrap();
    let summary: UploadSummary = serde_json::from_str(&response.data).unwrap();
    let fields: Vec<_> = summary
        .fields
        .iter()
        .map(|f| format!("{}={}", f.name, f.value))
        .collect();
    assert_eq!(fields, ["n=1", "b=true", "s=x"]);
    assert_eq!(summary.files[0].content_type, "text/plain");
}

/// App code cannot take the engine down: a panicking progress listener,
/// `success`, `fail` or `complete` is logged, `complete` still follows a
/// panicking `success`/`fail`, the task settles, and later uploads work.
#[test]
fn panicking_callbacks_do_not_stop_the_engine() {
    for dispatch in [Dispatch::EngineThread, Dispatch::Queue(EventQueue::new())] {
        let fx = fixture(dispatch.clone());
        make_file(&fx.root, "a.bin", 100_000, 3);
        let drain = |task: &uploadtask::UploadTask| match &dispatch {
            Dispatch::Queue(queue) => {
                while task.try_result().is_none() {
                    queue.run_timeout(Duration::from_millis(50));
                }
                task.try_result().unwrap()
            }
            Dispatch::EngineThread => task.wait(),
        };
        // success and a listener panic: complete still runs; the outcome stands.
        let log = Arc::new(Log::default());
        let done = Arc::clone(&log);
        let task = fx.client.upload_file(
            UploadOptions::new(fx.url(), "internal://mass/a.bin", "f")
                .on_progress_update(|_| panic!("listener panics"))
                .success(|_| panic!("success panics"))
                .complete(move || done.push("complete".into())),
        );
        assert_eq!(drain(&task).unwrap().status_code, 200);
        assert_eq!(log.entries(), ["complete"]);
        // fail and complete panic (an unknown root: 202).
        let task = fx.client.upload_file(
            UploadOptions::new(fx.url(), "internal://nowhere/a.bin", "f")
                .fail(|_, _| panic!("fail panics"))
                .complete(|| panic!("complete panics")),
        );
        assert_eq!(drain(&task).unwrap_err().code(), 202);
        // The engine goes on.
        let log = Arc::new(Log::default());
        let task = fx
            .client
            .upload_file(logged(UploadOptions::new(fx.url(), "internal://mass/a.bin", "f"), &log));
        assert_eq!(drain(&task).unwrap().status_code, 200);
        assert_eq!(log.entries(), ["success 200", "complete"]);
    }
}

/// `wait()` inside a callback on the engine thread fails at once with
/// code 200 instead of hanging the engine.
#[test]
fn wait_inside_an_engine_thread_callback_fails_at_once() {
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "a.bin", 10, 3);
    let (tx, rx) = std::sync::mpsc::channel();
    let slot: Arc<Mutex<Option<uploadtask::UploadTask>>> = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&slot);
    let (other_peer, _go) = gated_peer();
    let other = fx
        .client
        .upload_file(UploadOptions::new(other_peer.url("/"), "internal://mass/a.bin", "f"));
    *slot.lock().unwrap() = Some(other.clone());
    let task = fx.client.upload_file(
        UploadOptions::new(fx.url(), "internal://mass/a.bin", "f").complete(move || {
            let other = seen.lock().unwrap().clone().unwrap();
            let _ = tx.send(other.wait());
        }),
    );
    assert_eq!(task.wait().unwrap().status_code, 200);
    let error = rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap_err();
    assert_eq!(
        (error.kind, error.code()),
        (uploadtask::ErrorKind::WouldDeadlock, 200),
        "{error}"
    );
    other.abort();
    assert_eq!(other.wait().unwrap_err().code(), 1000);
}

/// An engine that stops with uploads pending settles every task: none
/// hangs in `wait()`.
#[test]
fn tasks_settle_when_the_engine_stops() {
    let fx = fixture(Dispatch::EngineThread);
    make_file(&fx.root, "a.bin", 10, 3);
    let (peer, _go) = gated_peer();
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            fx.client
                .upload_file(UploadOptions::new(peer.url("/"), "internal://mass/a.bin", "f"))
        })
        .collect();
    fx.client.engine().shutdown();
    for task in tasks {
        let error = task.wait().unwrap_err();
        assert_eq!(
            (error.kind, error.code()),
            (uploadtask::ErrorKind::Aborted, 1000),
            "{error}"
        );
    }
    // A call after the stop settles too, never inside the call.
    let caller = std::thread::current().id();
    let (tx, rx) = std::sync::mpsc::channel();
    let task = fx.client.upload_file(
        UploadOptions::new(peer.url("/"), "internal://mass/a.bin", "f")
            .fail(move |_, _| tx.send(std::thread::current().id()).unwrap()),
    );
    assert_eq!(task.wait().unwrap_err().message, "engine shut down");
    assert_ne!(rx.recv().unwrap(), caller, "not inside the caller's call");
}

/// `onHeadersReceived`: once, with the final status and headers, before
/// `success`; listeners added right after the call get it; a removed one
/// never runs; the serialized shape is `{statusCode, header}`.
#[test]
fn headers_received_before_success() {
    let queue = EventQueue::new();
    let fx = fixture(Dispatch::Queue(queue.clone()));
    make_file(&fx.root, "h.bin", 10_000, 5);
    let log = Arc::new(Log::default());
    let (early, late, removed) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&log));
    let task = fx.client.upload_file(logged(
        UploadOptions::new(fx.url(), "internal://mass/h.bin", "f").on_headers_received(move |head| {
            early.push(format!(
                "early {} {}",
                head.status_code,
                serde_json::to_string(head).unwrap()
            ))
        }),
        &log,
    ));
    task.on_headers_received(move |head| late.push(format!("late {}", head.status_code)));
    let gone = task.on_headers_received(move |_| removed.push("removed".into()));
    task.off_headers_received(Some(gone));
    while task.try_result().is_none() {
        queue.run_timeout(Duration::from_millis(50));
    }
    let entries = log.entries();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert!(
        entries[0].starts_with(r#"early 200 {"statusCode":200,"header":{"#),
        "{entries:?}"
    );
    assert!(
        entries[0].contains(r#""content-type":"application/json""#),
        "{entries:?}"
    );
    assert_eq!(entries[1..], ["late 200", "success 200", "complete"]);
}

/// Several files in one request (`files`, as hapjs and uni-app name it),
/// each with its type, parsed back by multer byte for byte; and a raw `PUT`
/// of a file (`raw`), read back by hand: exactly the file, its length, the
/// user's Content-Type, no form.
#[test]
fn several_files_in_one_request_and_a_raw_put() {
    let fx = fixture(Dispatch::EngineThread);
    let (_, a) = make_file(&fx.root, "a.png", 70_000, 1);
    let (_, b) = make_file(&fx.root, "b.bin", 0, 2);
    let (_, c) = make_file(&fx.root, "c.txt", 5, 3);
    let options: UploadOptions = serde_json::from_value(serde_json::json!({
        "url": fx.url(),
        "formData": {"k": "v"},
        "files": [
            {"name": "one", "uri": "internal://mass/a.png"},
            {"name": "two", "filePath": "internal://mass/b.bin", "type": "application/x-two"},
            {"name": "three", "uri": "internal://mass/c.txt", "filename": "renamed.txt"}
        ]
    }))
    .unwrap();
    let response = fx.client.upload_file(options).wait().unwrap();
    let summary: UploadSummary = serde_json::from_str(&response.data).unwrap();
    let got: Vec<_> = summary
        .files
        .iter()
        .map(|f| {
            (
                f.field.as_str(),
                f.filename.as_str(),
                f.content_type.as_str(),
                f.sha256.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("one", "a.png", "image/png", a.as_str()),
            ("two", "b.bin", "application/x-two", b.as_str()),
            ("three", "renamed.txt", "text/plain", c.as_str()),
        ]
    );
    assert_eq!(summary.fields.len(), 1);

    // Raw PUT to a peer that reads the request by hand.
    let (path, digest) = make_file(&fx.root, "raw.bin", 300_000, 4);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let peer = RawServer::start(move |mut stream, _| {
        let (head, body) = read_request(&mut stream);
        if head.is_empty() {
            return;
        }
        let _ = std::io::Write::write_all(&mut stream, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let _ = tx
            .lock()
            .unwrap()
            .send((String::from_utf8_lossy(&head).into_owned(), body));
    });
    let task = fx.client.upload_file(
        UploadOptions::new(peer.url("/bucket/key?X-Sig=1"), "internal://mass/raw.bin", "")
            .method("PUT")
            .raw(true)
            .header("Content-Type", "application/x-raw"),
    );
    assert_eq!(task.wait().unwrap().status_code, 200);
    let (head, body) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(head.starts_with("PUT /bucket/key?X-Sig=1 HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Length: 300000\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: application/x-raw\r\n"), "{head}");
    assert_eq!(head.matches("Content-Type").count(), 1, "{head}");
    assert_eq!(sha256_hex(&body), digest);
    drop(path);
    // A raw body with form data is a 202.
    let error = fx
        .client
        .upload_file(
            UploadOptions::new(peer.url("/"), "internal://mass/raw.bin", "")
                .raw(true)
                .form_data("k", "v"),
        )
        .wait()
        .unwrap_err();
    assert_eq!(error.code(), 202, "{error}");
}

/// `ClientConfig::engines`: uploads spread over the engines, the least
/// loaded first (ties in turn), each with its share of the in-flight cap;
/// every engine's counts return to zero; and they all arrive byte-exact.
#[test]
fn several_engines_share_the_uploads() {
    let stall = RawServer::start(|stream, stop| {
        idle_until_stopped(stop, Duration::from_secs(60));
        drop(stream);
    });
    let dir = temp_dir("engines");
    let (_, digest) = make_file(&dir, "a.bin", 10_000, 4);
    let client = Client::new(ClientConfig {
        roots: Roots::new().root("mass", &*dir),
        engines: 2,
        ..ClientConfig::default()
    })
    .unwrap();
    assert_eq!(client.engines().count(), 2);
    // Uploads that stay in flight: 5 on each engine.
    let tasks: Vec<_> = (0..10)
        .map(|_| client.upload_file(UploadOptions::new(stall.url("/"), "internal://mass/a.bin", "f")))
        .collect();
    let loads: Vec<usize> = client.engines().map(|e| e.stats().unwrap().uploads).collect();
    assert_eq!(loads, [5, 5]);
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        assert_eq!(task.wait().unwrap_err().code(), 1000);
    }
    // Against a receiver: every upload arrives, and both engines end idle.
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let url = format!("http://{}/up", receiver.addr());
    let tasks: Vec<_> = (0..40)
        .map(|_| client.upload_file(UploadOptions::new(&url, "internal://mass/a.bin", "f")))
        .collect();
    for task in tasks {
        let response = task.wait().expect("uploaded");
        let summary: UploadSummary = serde_json::from_str(&response.data).unwrap();
        assert_eq!(summary.files[0].sha256, digest);
    }
    for engine in client.engines() {
        let stats = engine.stats().unwrap();
        assert_eq!((stats.uploads, stats.in_flight, stats.queued), (0, 0, 0));
    }
}

/// The `http` option chooses the version per upload; the response says
/// which carried it; an unknown value does not parse.
#[test]
fn the_http_option_chooses_the_version() {
    let receiver = Receiver::start(ReceiverConfig {
        http2: Some(uploadtask_cli::serve::Http2Settings::default()),
        ..Default::default()
    })
    .unwrap();
    let root = temp_dir("facade-h2");
    let (_, digest) = make_file(&root, "a.bin", 50_000, 9);
    let client = Client::new(ClientConfig {
        roots: Roots::new().root("mass", root.path()),
        ..Default::default()
    })
    .unwrap();
    let url = format!("http://{}/upload", receiver.addr());
    for (http, protocol) in [
        ("2-prior-knowledge", "HTTP/2"),
        ("1.1", "HTTP/1.1"),
        ("auto", "HTTP/1.1"),
    ] {
        let options: UploadOptions = serde_json::from_value(serde_json::json!({
            "url": url, "filePath": "internal://mass/a.bin", "name": "f", "http": http
        }))
        .unwrap();
        let response = client.upload_file(options).wait().unwrap();
        assert_eq!(response.protocol, protocol, "{http}");
        let summary: UploadSummary = serde_json::from_str(&response.data).unwrap();
        assert_eq!(summary.files[0].sha256, digest);
    }
    let bad = serde_json::from_value::<UploadOptions>(serde_json::json!({"url": url, "http": "3"}));
    assert!(bad.is_err());
}
