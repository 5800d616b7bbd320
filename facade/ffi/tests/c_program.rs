//! Compiles `tests/c/upload.c` against `uploadtask.h` and the cdylib, with
//! AddressSanitizer where the compiler has it, and runs it against the
//! loopback receiver. Skips (with a message) only when no C compiler is
//! found.

use std::process::Command;

use uploadtask_cli::serve::{Receiver, ReceiverConfig};

mod support;

#[test]
fn the_c_program_uploads_through_the_c_api() {
    let Some(compiler) = support::compiler() else {
        eprintln!("SKIPPED: no C compiler found; the C API test did not run");
        return;
    };
    let dir = std::env::temp_dir().join(format!("uploadtask-ffi-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::write(dir.join("big.bin"), vec![9u8; 64 << 20]).unwrap();
    let exe = dir.join("upload");
    let asan = support::compile(&compiler, "upload.c", &exe, true);
    if !asan {
        eprintln!("AddressSanitizer is not available here: built without it");
        assert!(
            support::compile(&compiler, "upload.c", &exe, false),
            "the C program does not compile"
        );
    }
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    let url = format!("http://{}/up", receiver.addr());
    // An S3 store (moto) for the options JSON's s3:// upload.
    let moto = support::Moto::start();
    let output = Command::new(&exe)
        .arg(&url)
        .arg(&dir)
        .arg(moto.endpoint())
        // Engine threads still winding down at exit are not leaks.
        .env("ASAN_OPTIONS", "detect_leaks=0")
        // The library of this build, not a stale copy cargo's path may name.
        .env("LD_LIBRARY_PATH", support::library_dir())
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
    assert_eq!(
        moto.get("/cbucket/big.bin"),
        vec![9u8; 64 << 20],
        "the object is the file"
    );
    assert!(!stderr.contains("AddressSanitizer"), "{stderr}");
}
