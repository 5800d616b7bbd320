//! What a C host counts on, each checked by `tests/c/hosts.c` built against
//! `uploadtask.h` and the cdylib (with AddressSanitizer where the compiler
//! has it): no SIGPIPE, nothing kept after `ut_client_free`, handles never
//! reused, no hang on a re-entrant dispatch, CR/LF/TAB URLs refused,
//! several engines. Skips (with a message) only without a C compiler.
//!
//! With `UT_C_VALGRIND=1` the program is built without AddressSanitizer
//! and each mode runs under `valgrind --leak-check=full`, failing on any
//! definitely lost block.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use uploadtask_cli::serve::{Receiver, ReceiverConfig};

mod support;

/// The program and its files in a directory of their own, removed when
/// dropped (each test builds its own: they run in parallel).
struct Built {
    dir: PathBuf,
    exe: PathBuf,
    asan: bool,
}

impl Drop for Built {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn valgrind() -> bool {
    std::env::var_os("UT_C_VALGRIND").is_some_and(|v| v == "1")
}

fn build(mode: &str) -> Option<Built> {
    let Some(compiler) = support::compiler() else {
        eprintln!("SKIPPED: no C compiler found; the C host test did not run");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("uploadtask-ffi-{mode}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut built = Built {
        exe: dir.join("hosts"),
        dir,
        asan: false,
    };
    std::fs::write(built.dir.join("a.bin"), vec![7u8; 10_000]).unwrap();
    std::fs::write(built.dir.join("big.bin"), vec![9u8; 8 << 20]).unwrap();
    built.asan = !valgrind() && support::compile(&compiler, "hosts.c", &built.exe, true);
    if !built.asan {
        assert!(
            support::compile(&compiler, "hosts.c", &built.exe, false),
            "the C program does not compile"
        );
    }
    Some(built)
}

/// Runs one mode of the program; it must exit 0 and say so.
fn run_mode(mode: &str, url: &str) {
    let Some(built) = build(mode) else { return };
    let mut command = if valgrind() {
        let mut command = Command::new("valgrind");
        command.args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=99",
            "--quiet",
        ]);
        command.arg(&built.exe);
        command
    } else {
        Command::new(&built.exe)
    };
    let output: Output = command
        .args([mode, url, &built.dir.to_string_lossy()])
        // Engine threads of other modes are not this mode's leaks.
        .env("ASAN_OPTIONS", "detect_leaks=0")
        // The library of this build, not a stale copy cargo's path may name.
        .env("LD_LIBRARY_PATH", support::library_dir())
        .output()
        .expect("run the C program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{mode}: {} (asan: {}):\n{stdout}\n{stderr}",
        output.status,
        built.asan
    );
    assert_eq!(stdout.trim(), format!("{mode} ok"), "{stderr}");
    if std::env::var_os("UT_DEBUG").is_some() {
        eprintln!("{stderr}");
    }
    assert!(!stderr.contains("AddressSanitizer"), "{stderr}");
}

fn receiver_url() -> (Receiver, String) {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let url = format!("http://{}/up", receiver.addr());
    (receiver, url)
}

/// A server that takes each request head, says `100 Continue`, waits
/// 20 ms, then shuts down its side and closes with the body unread (the
/// kernel resets): the client's next write fails with EPIPE.
struct Resetter {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Resetter {
    fn start() -> Resetter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
                        head.push(byte[0]);
                    }
                    // The body may come (it asked with `Expect`); the client
                    // fills the buffers meanwhile; then FIN and RST (unread
                    // bytes) arrive together: its next write meets EPIPE.
                    let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                    std::thread::sleep(Duration::from_millis(20));
                    let _ = stream.shutdown(Shutdown::Write);
                });
            }
        });
        Resetter {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Resetter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_write_to_a_reset_connection_does_not_kill_the_host() {
    let server = Resetter::start();
    run_mode("sigpipe", &format!("http://{}/up", server.addr));
}

#[test]
fn a_freed_client_gives_back_its_threads_and_descriptors() {
    let (_receiver, url) = receiver_url();
    run_mode("free", &url);
}

#[test]
fn freed_handles_never_come_back() {
    let (_receiver, url) = receiver_url();
    run_mode("handles", &url);
}

#[test]
fn a_dispatch_from_inside_a_callback_returns_at_once() {
    let (_receiver, url) = receiver_url();
    run_mode("reentrant", &url);
}

#[test]
fn urls_with_control_characters_are_refused() {
    let (_receiver, url) = receiver_url();
    run_mode("crlf", &url);
}

#[test]
fn a_client_runs_several_engines() {
    let (_receiver, url) = receiver_url();
    run_mode("engines", &url);
}
