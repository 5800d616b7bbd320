//! Building the C programs of `tests/c/` against `uploadtask.h` and the
//! cdylib of this test build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding `libuploadtask_ffi.so` for this test build.
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let deps = exe.parent().expect("deps");
    for dir in [deps, deps.parent().expect("profile dir")] {
        if dir.join("libuploadtask_ffi.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!("libuploadtask_ffi.so not found next to {}", exe.display());
}

/// The C compiler, if this machine has one.
pub fn compiler() -> Option<PathBuf> {
    cc::Build::new()
        .cargo_metadata(false)
        .opt_level(0)
        .host("x86_64-unknown-linux-gnu")
        .target(&std::env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-linux-gnu".into()))
        .try_get_compiler()
        .map(|c| c.path().to_path_buf())
        .ok()
        .filter(|path| Command::new(path).arg("--version").output().is_ok())
}

/// Compiles `tests/c/{source}` into `out`, with AddressSanitizer when
/// `asan`; false when the compiler refused.
pub fn compile(compiler: &Path, source: &str, out: &Path, asan: bool) -> bool {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir();
    let mut cmd = Command::new(compiler);
    cmd.args([
        "-std=c11",
        "-D_POSIX_C_SOURCE=200809L",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
    ])
    .arg("-I")
    .arg(crate_dir)
    .arg(crate_dir.join("tests/c").join(source))
    .arg("-o")
    .arg(out)
    .arg("-L")
    .arg(&lib)
    .arg(format!("-Wl,-rpath,{}", lib.display()))
    .arg("-luploadtask_ffi");
    if asan {
        cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
    }
    cmd.status().map(|s| s.success()).unwrap_or(false)
}

/// moto's S3 server on a free port of 127.0.0.1 with bucket `cbucket`,
/// stopped when dropped (the C program's s3:// upload goes there).
#[allow(dead_code)] // c_hosts.rs shares this module without it.
pub struct Moto {
    child: std::process::Child,
    port: u16,
}

#[allow(dead_code)]
impl Moto {
    pub fn start() -> Moto {
        use std::net::{TcpListener, TcpStream};
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
        let moto = Moto { child, port };
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                assert_eq!(&moto.request("PUT", "/cbucket")[..12], b"HTTP/1.1 200");
                return moto;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("moto_server did not start");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn request(&self, method: &str, path: &str) -> Vec<u8> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        response
    }

    /// An object's bytes.
    pub fn get(&self, path: &str) -> Vec<u8> {
        let response = self.request("GET", path);
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        response[end..].to_vec()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
