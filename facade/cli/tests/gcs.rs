//! GCS resumable uploads against gcp-storage-emulator (a GCS
//! implementation no one here wrote) on 127.0.0.1: a program killed
//! mid-upload, run again, asks the session's offset and sends only the
//! rest; the object is byte-exact.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_uploadtask");
const MIB: usize = 1 << 20;

/// The emulator with bucket `gb`, in memory, stopped when dropped.
struct Emulator {
    child: Child,
    port: u16,
}

impl Emulator {
    fn start() -> Emulator {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("gcp-storage-emulator")
            .args(["start", "-H", "127.0.0.1", "--port", &port.to_string()])
            .args(["--default-bucket", "gb", "--in-memory", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gcp-storage-emulator (pip install gcp-storage-emulator; .ci/run installs it)");
        let emulator = Emulator { child, port };
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return emulator;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gcp-storage-emulator did not start");
    }

    fn object_sha256(&self, name: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let request = format!(
            "GET /download/storage/v1/b/gb/o/{}?alt=media HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            name.replace('/', "%2F"),
            self.port
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(response.starts_with(b"HTTP/1.0 200") || response.starts_with(b"HTTP/1.1 200"));
        hex::encode(Sha256::digest(&response[end..]))
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_program_killed_mid_upload_resumes_from_the_sessions_offset() {
    let emulator = Emulator::start();
    let dir = std::env::temp_dir().join(format!("uploadtask-gcs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.bin");
    let bytes: Vec<u8> = (0..24 * MIB).map(|i| ((i / 4093) as u8) ^ (i as u8)).collect();
    std::fs::write(&path, &bytes).unwrap();
    let digest = hex::encode(Sha256::digest(&bytes));
    let url = format!(
        "http://127.0.0.1:{}/upload/storage/v1/b/gb/o?uploadType=resumable&name=dir/big.bin",
        emulator.port
    );
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["upload", "--gcs-resumable", &url])
            .arg(&path)
            .args(["--chunk-size", "1M"])
            .args(extra)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = run(&["--progress", "json"]);
    let stderr = BufReader::new(first.stderr.take().unwrap());
    for line in stderr.lines() {
        let Ok(progress) = serde_json::from_str::<serde_json::Value>(&line.unwrap()) else {
            continue;
        };
        if progress["totalBytesSent"].as_u64().unwrap_or(0) > 6 * MIB as u64 {
            break;
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let second = run(&["-v"]).wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(second.status.success(), "{stdout} {stderr}");
    assert!(stdout.starts_with("200 "), "{stdout}");
    // It asked first, then went on from where the session stood.
    let ranges: Vec<String> = stderr
        .lines()
        .filter_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("> content-range: bytes ")
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ranges.first().map(String::as_str), Some("*/25165824"), "{stderr}");
    let resumed_at: u64 = ranges[1].split('-').next().unwrap().parse().unwrap();
    assert!(
        resumed_at >= 6 * MIB as u64 && resumed_at % MIB as u64 == 0,
        "{ranges:?}"
    );
    assert!(!stderr.contains("> POST"), "no new session: {stderr}");
    assert_eq!(emulator.object_sha256("dir/big.bin"), digest);
}
