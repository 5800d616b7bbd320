//! `internal://` paths (SPEC §6): `internal://cache/`, `files/`, `mass/` and
//! `tmp/` map to directories the embedder configures.
//!
//! Refused with code 202: a `..` segment (also percent-encoded), a
//! backslash, NUL or another control character, an unknown or unconfigured
//! root, an empty path, and a file that turns out (after opening, so
//! symlinks are followed) to lie outside its root. Plain paths and
//! `file://` URLs are taken too unless the resolver is in sandbox mode.
//!
//! ```
//! use uploadtask::paths::Roots;
//!
//! let roots = Roots::new().root("cache", "/data/app/cache").sandbox(true);
//! assert_eq!(roots.resolve("internal://cache/img/a.png").unwrap().path, std::path::Path::new("/data/app/cache/img/a.png"));
//! assert_eq!(roots.resolve("internal://cache/../etc/passwd").unwrap_err().code(), 202);
//! assert_eq!(roots.resolve("/etc/passwd").unwrap_err().code(), 202);
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use uploadtask_engine::{BodySource, ErrorKind, FileSource, UploadError};

const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The roots `internal://` may name.
pub const ROOT_NAMES: [&str; 4] = ["cache", "files", "mass", "tmp"];

/// Where `internal://` roots live, and whether other paths are allowed.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    dirs: HashMap<String, PathBuf>,
    sandbox: bool,
}

/// A resolved path: where to open, and under which root it must stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The file to open.
    pub path: PathBuf,
    /// The root directory it must lie under (for `internal://` paths).
    pub root: Option<PathBuf>,
    /// The filename to send: the basename of the decoded path.
    pub filename: String,
}

fn bad(message: String) -> UploadError {
    UploadError::new(ErrorKind::InvalidArgument, message)
}

impl Roots {
    /// No roots, not sandboxed.
    pub fn new() -> Self {
        Roots::default()
    }

    /// Maps `internal://NAME/` to `dir`. Any name may be configured; SPEC §6
    /// names `cache`, `files`, `mass` and `tmp`.
    pub fn root(mut self, name: &str, dir: impl Into<PathBuf>) -> Self {
        self.dirs.insert(name.to_string(), dir.into());
        self
    }

    /// In sandbox mode only `internal://` paths are taken.
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
            filename,
        })
    }

    /// Resolves and opens `file_path` for reading; checks, on the open file,
    /// that it is a regular file under its root. Errors use the documented
    /// codes: 202 for the path, 300 for the file.
    pub fn open(&self, file_path: &str) -> Result<Box<dyn BodySource>, UploadError> {
        let resolved = self.resolve(file_path)?;
        let file = File::open(&resolved.path).map_err(|e| file_error(&e, file_path))?;
        if let Some(root) = &resolved.root {
            let real = real_path(&file, &resolved.path).map_err(|e| file_error(&e, file_path))?;
            let root = std::fs::canonicalize(root).map_err(|e| file_error(&e, file_path))?;
            if !real.starts_with(&root) {
                return Err(bad(format!("path escapes its root: {file_path}")));
            }
        }
        let source = FileSource::from_file(file).map_err(|e| file_error(&e, file_path))?;
        Ok(Box::new(source))
    }
}

/// The path the open file really has (symlinks resolved).
fn real_path(file: &File, path: &Path) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).or_else(|_| std::fs::canonicalize(path))
}

fn file_error(e: &io::Error, file_path: &str) -> UploadError {
    // Out of descriptors is not the file's fault: code 200.
    if matches!(e.raw_os_error(), Some(code) if code == EMFILE || code == ENFILE) {
        return UploadError::new(ErrorKind::ResourceExhausted, format!("cannot open {file_path}: {e}"));
    }
    let message = match e.kind() {
        io::ErrorKind::NotFound => format!("file not found: {file_path}"),
        io::ErrorKind::PermissionDenied => format!("file not readable: {file_path}"),
        io::ErrorKind::InvalidInput => format!("not a regular file: {file_path}"),
        _ => format!("cannot open {file_path}: {e}"),
    };
    UploadError::new(ErrorKind::File, message)
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
        let roots = Roots::new();
        assert_eq!(roots.resolve("/tmp/a b.txt").unwrap().path, Path::new("/tmp/a b.txt"));
        assert_eq!(
            roots.resolve("file:///tmp/a%20b.txt").unwrap().path,
            Path::new("/tmp/a b.txt")
        );
        assert_eq!(roots.resolve("file:///tmp/a%20b.txt").unwrap().filename, "a b.txt");
        assert_eq!(roots.resolve("/tmp/a\nb").unwrap_err().code(), 202);
    }
}
