//! Compiles `tests/c/upload.c` against `uploadtask.h` and the cdylib, with
//! AddressSanitizer where the compiler has it, and runs it against the
//! loopback receiver. Skips (with a message) only when no C compiler is
//! found.

use std::path::{Path, PathBuf};
use std::process::Command;

use uploadtask_cli::serve::{Receiver, ReceiverConfig};

/// The directory holding `libuploadtask_ffi.so` for this test build.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    let deps = exe.parent().expect("deps");
    for dir in [deps, deps.parent().expect("profile dir")] {
        if dir.join("libuploadtask_ffi.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!("libuploadtask_ffi.so not found next to {}", exe.display());
}

fn compile(compiler: &Path, out: &Path, asan: bool) -> bool {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(crate_dir)
        .arg(crate_dir.join("tests/c/upload.c"))
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

#[test]
fn the_c_program_uploads_through_the_c_api() {
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(0)
        .host("x86_64-unknown-linux-gnu")
        .target(&std::env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-linux-gnu".into()))
        .try_get_compiler()
        .map(|c| c.path().to_path_buf())
        .ok()
        .filter(|path| Command::new(path).arg("--version").output().is_ok());
    let Some(compiler) = compiler else {
        eprintln!("SKIPPED: no C compiler found; the C API test did not run");
        return;
    };
    let dir = std::env::temp_dir().join(format!("uploadtask-ffi-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::write(dir.join("big.bin"), vec![9u8; 64 << 20]).unwrap();
    let exe = dir.join("upload");
    let asan = compile(&compiler, &exe, true);
    if !asan {
        eprintln!("AddressSanitizer is not available here: built without it");
        assert!(compile(&compiler, &exe, false), "the C program does not compile");
    }
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let url = format!("http://{}/up", receiver.addr());
    let output = Command::new(&exe)
        .arg(&url)
        .arg(&dir)
        // Engine threads still winding down at exit are not leaks.
        .env("ASAN_OPTIONS", "detect_leaks=0")
        .output()
        .expect("run the C program");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the C program failed (asan: {asan}):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all C API checks passed"), "{stdout}");
    assert!(!stderr.contains("AddressSanitizer"), "{stderr}");
}
