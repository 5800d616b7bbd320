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
