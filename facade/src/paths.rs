//! `internal://` paths: `internal://cache/`, `files/`, `mass/` and
//! `tmp/` map to directories the embedder configures.
//!
//! Refused with code 202: a `..` segment (also percent-encoded), a
//! backslash, NUL or another control character, an unknown or unconfigured
//! root, an empty path, and a path whose symlinks lead outside its root.
//! The kernel confines the open to the root (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, Linux 5.6 and later: a
//! symlink is followed only while it stays beneath the root; an absolute
//! one is refused). Where `openat2` is missing the file is opened and its
//! real path read from `/proc/self/fd`; where that cannot be read the open
//! fails (closed, never unchecked).
//!
//! Roots are in sandbox mode by default: only `internal://` paths. Plain
//! paths and `file://` URLs are an explicit choice
//! ([`Roots::allow_plain_paths`]).
//!
//! Files open with `O_NONBLOCK` and anything but a regular file (a FIFO, a
//! device) is refused with code 300 before a byte is read, so an open never
//! blocks the loop.
//!
//! ```
//! use uploadtask::paths::Roots;
//!
//! let roots = Roots::new().root("cache", "/data/app/cache");
//! assert_eq!(roots.resolve("internal://cache/img/a.png").unwrap().path, std::path::Path::new("/data/app/cache/img/a.png"));
//! assert_eq!(roots.resolve("internal://cache/../etc/passwd").unwrap_err().code(), 202);
//! assert_eq!(roots.resolve("/etc/passwd").unwrap_err().code(), 202);
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use uploadtask_engine::source::open_nonblocking;
use uploadtask_engine::{BodySource, ErrorKind, FileSource, UploadError};

const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The roots `internal://` may name.
pub const ROOT_NAMES: [&str; 4] = ["cache", "files", "mass", "tmp"];

/// Where `internal://` roots live, and whether other paths are allowed.
#[derive(Debug, Clone)]
pub struct Roots {
    dirs: HashMap<String, PathBuf>,
    sandbox: bool,
}

/// No roots, sandboxed (only `internal://` paths).
impl Default for Roots {
    fn default() -> Self {
        Roots {
            dirs: HashMap::new(),
            sandbox: true,
        }
    }
}

/// A resolved path: where to open, and under which root it must stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The file to open.
    pub path: PathBuf,
    /// The root directory it must lie under (for `internal://` paths).
    pub root: Option<PathBuf>,
    /// The decoded path below the root (for `internal://` paths).
    pub relative: Option<String>,
    /// The filename to send: the basename of the decoded path.
    pub filename: String,
}

fn bad(message: String) -> UploadError {
    UploadError::new(ErrorKind::InvalidArgument, message)
}

impl Roots {
    /// No roots, sandboxed: only `internal://` paths.
    pub fn new() -> Self {
        Roots::default()
    }

    /// Also takes plain paths and `file://` URLs (what the program does).
    pub fn allow_plain_paths(self) -> Self {
        self.sandbox(false)
    }

    /// Maps `internal://NAME/` to `dir`. Any name may be configured; the documented API
    /// names `cache`, `files`, `mass` and `tmp`.
    pub fn root(mut self, name: &str, dir: impl Into<PathBuf>) -> Self {
        self.dirs.insert(name.to_string(), dir.into());
        self
    }

    /// In sandbox mode (the default) only `internal://` paths are taken.
    pub fn sandbox(mut self, on: bool) -> Self {
        self.sandbox = on;
        self
    }

    /// Resolves `file_path` without touching the file system.
    pub fn resolve(&self, file_path: &str) -> Result<Resolved, UploadError> {
        if file_path.is_empty() {
            return Err(bad("missing filePath".into()));
        }
        if let Some(rest) = file_path.strip_prefix("internal://") {
            let (root_name, relative) = rest.split_once('/').unwrap_or((rest, ""));
            let root = self
                .dirs
                .get(root_name)
                .ok_or_else(|| bad(format!("unknown root in {file_path}")))?;
            let decoded = decode_relative(relative).map_err(|why| bad(format!("{why} in {file_path}")))?;
            let filename = uploadtask_multipart::basename(&decoded).to_string();
            return Ok(Resolved {
                path: root.join(&decoded),
                root: Some(root.clone()),
                relative: Some(decoded),
                filename,
            });
        }
        if self.sandbox {
            return Err(bad(format!("only internal:// paths are allowed: {file_path}")));
        }
        let path = if file_path.starts_with("file:") {
            url::Url::parse(file_path)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| bad(format!("malformed file url {file_path}")))?
        } else {
            if file_path.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(bad(format!("control character in path {file_path:?}")));
            }
            PathBuf::from(file_path)
        };
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Resolved {
            path,
            root: None,
            relative: None,
            filename,
        })
    }

    /// Resolves and opens `file_path` for reading, without blocking; checks
    /// that it is a regular file under its root. Errors use the documented
    /// codes: 202 for the path, 300 for the file.
    pub fn open(&self, file_path: &str) -> Result<Box<dyn BodySource>, UploadError> {
        let resolved = self.resolve(file_path)?;
        let file = match (&resolved.root, &resolved.relative) {
            (Some(root), Some(relative)) => open_beneath(root, relative, &resolved.path, file_path)?,
            _ => open_nonblocking(&resolved.path).map_err(|e| file_error(e, file_path))?,
        };
        let source = FileSource::from_file(file).map_err(|e| file_error(e, file_path))?;
        Ok(Box::new(source))
    }
}

/// Opens `relative` confined to `root` by the kernel, or, where `openat2`
/// is missing, opens `path` and checks its real path (failing closed).
fn open_beneath(root: &Path, relative: &str, path: &Path, file_path: &str) -> Result<File, UploadError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let escapes = || bad(format!("path escapes its root: {file_path}"));
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| file_error(e.into(), file_path))?;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, relative, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::XDEV | Errno::LOOP) => Err(escapes()),
        Err(Errno::NOSYS | Errno::PERM) => {
            // No openat2 (old kernel, or a seccomp filter): open, then
            // check where the open file really is.
            let file = open_nonblocking(path).map_err(|e| file_error(e, file_path))?;
            let real = real_path(&file).map_err(|e| {
                UploadError::new(
                    ErrorKind::InvalidArgument,
                    format!("cannot check where {file_path} leads: {e}"),
                )
            })?;
            let root = std::fs::canonicalize(root).map_err(|e| file_error(e, file_path))?;
            if !real.starts_with(&root) {
                return Err(escapes());
            }
            Ok(file)
        }
        Err(e) => Err(file_error(e.into(), file_path)),
    }
}

/// The path the open file really has (symlinks resolved), from `/proc`.
fn real_path(file: &File) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

fn file_error(e: io::Error, file_path: &str) -> UploadError {
    // Out of descriptors is not the file's fault: code 200.
    if matches!(e.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE) {
        return UploadError::new(ErrorKind::ResourceExhausted, format!("cannot open {file_path}: {e}")).with_source(e);
    }
    let message = match e.kind() {
        io::ErrorKind::NotFound => format!("file not found: {file_path}"),
        io::ErrorKind::PermissionDenied => format!("file not readable: {file_path}"),
        io::ErrorKind::InvalidInput => format!("not a regular file: {file_path}"),
        _ => format!("cannot open {file_path}: {e}"),
    };
    UploadError::new(ErrorKind::File, message).with_source(e)
}

/// Percent-decodes a relative path and refuses what could leave the root.
fn decode_relative(relative: &str) -> Result<String, &'static str> {
    let mut bytes = Vec::with_capacity(relative.len());
    let raw = relative.as_bytes();
    let mut at = 0;
    while at < raw.len() {
        let byte = raw[at];
        if byte == b'%' {
            let hex = raw.get(at + 1..at + 3).and_then(|h| std::str::from_utf8(h).ok());
            let value = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("malformed percent-encoding")?;
            bytes.push(value);
            at += 3;
        } else {
            bytes.push(byte);
            at += 1;
        }
    }
    let decoded = String::from_utf8(bytes).map_err(|_| "invalid UTF-8")?;
    if decoded.is_empty() || decoded.ends_with('/') {
        return Err("no file name");
    }
    if decoded.contains('\\') {
        return Err("backslash");
    }
    if decoded.chars().any(char::is_control) {
        return Err("control character");
    }
    if decoded.starts_with('/') {
        return Err("absolute path");
    }
    if decoded
        .split('/')
        .any(|segment| segment == ".." || segment == "." || segment.is_empty())
    {
        return Err("'..', '.' or empty segment");
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots::new()
            .root("cache", "/r/cache")
            .root("mass", "/r/mass")
            .sandbox(true)
    }

    #[test]
    fn internal_paths_map_to_roots() {
        let r = roots().resolve("internal://mass/download/test%20one.png").unwrap();
        assert_eq!(r.path, Path::new("/r/mass/download/test one.png"));
        assert_eq!(r.filename, "test one.png");
    }

    #[test]
    fn attacks_are_refused_with_202() {
        for attack in [
            "internal://cache/../x",
            "internal://cache/a/../../x",
            "internal://cache/%2e%2e/x",
            "internal://cache/%2E%2e/x",
            "internal://cache/.%2e/x",
            "internal://cache/a%2f..%2fx",
            "internal://cache/a\\b",
            "internal://cache/a%5cb",
            "internal://cache/a\0b",
            "internal://cache/a%00b",
            "internal://cache/a%0ab",
            "internal://cache/",
            "internal://cache",
            "internal://cache//etc/passwd",
            "internal://cache/%zz",
            "internal://unknown/a",
            "internal://files/a",
            "/etc/passwd",
            "file:///etc/passwd",
            "",
        ] {
            let error = roots().resolve(attack).unwrap_err();
            assert_eq!(error.code(), 202, "{attack:?}: {error}");
        }
    }

    #[test]
    fn plain_paths_and_file_urls_outside_the_sandbox() {
        assert_eq!(
            Roots::new().resolve("/tmp/a").unwrap_err().code(),
            202,
            "sandboxed by default"
        );
        let roots = Roots::new().allow_plain_paths();
        assert_eq!(roots.resolve("/tmp/a b.txt").unwrap().path, Path::new("/tmp/a b.txt"));
        assert_eq!(
            roots.resolve("file:///tmp/a%20b.txt").unwrap().path,
            Path::new("/tmp/a b.txt")
        );
        assert_eq!(roots.resolve("file:///tmp/a%20b.txt").unwrap().filename, "a b.txt");
        assert_eq!(roots.resolve("/tmp/a\nb").unwrap_err().code(), 202);
    }
}
