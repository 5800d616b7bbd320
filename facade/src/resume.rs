//! Where resumable uploads remember their upload resource between runs: a
//! [`ResumeStore`] keyed by a file's fingerprint, so that `upload_file` on
//! the same file to the same endpoint after a restart continues from the
//! server's offset instead of byte 0.
//!
//! The fingerprint covers the protocol and endpoint, the path as given,
//! the size, the modification time, and a sha256 of the first and last MiB
//! (tus-js-client uses name, type, size and mtime; the hash also catches a
//! file rewritten in place within the mtime's resolution).
//!
//! ```
//! use uploadtask::resume::{MemoryStore, ResumeStore, StoredUpload};
//!
//! let store = MemoryStore::default();
//! store.put("fp", &StoredUpload { url: "http://127.0.0.1/files/1".into(), expires: None });
//! assert_eq!(store.get("fp").map(|s| s.url), Some("http://127.0.0.1/files/1".to_string()));
//! store.remove("fp");
//! assert!(store.get("fp").is_none());
//! ```

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use uploadtask_engine::source::BodySource;

/// What is kept for one interrupted upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUpload {
    /// The upload resource the server created.
    pub url: String,
    /// When the server said it drops the resource (tus `Upload-Expires`, an
    /// HTTP-date), if it did: after that the entry is not offered.
    pub expires: Option<String>,
}

impl StoredUpload {
    /// True once `expires` has passed (by this machine's clock).
    pub fn is_expired(&self) -> bool {
        let Some(expires) = &self.expires else { return false };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        uploadtask_engine::retry::parse_retry_after(expires, now).is_some_and(|left| left.is_zero())
    }
}

/// A small key-value store of interrupted uploads. Its methods run on the
/// engine thread when the server names or drops a resource: keep them quick
/// (a small local write). Errors are logged, never fatal: an upload whose
/// resource is not stored only loses the ability to resume after a restart.
pub trait ResumeStore: Send + Sync + std::fmt::Debug {
    /// The upload stored under `fingerprint`.
    fn get(&self, fingerprint: &str) -> Option<StoredUpload>;
    /// Stores (or replaces) the upload under `fingerprint`.
    fn put(&self, fingerprint: &str, upload: &StoredUpload);
    /// Forgets `fingerprint` (the upload finished or its resource is gone).
    fn remove(&self, fingerprint: &str);
}

/// A store in memory (for tests and short-lived hosts).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<HashMap<String, StoredUpload>>);

impl ResumeStore for MemoryStore {
    fn get(&self, fingerprint: &str) -> Option<StoredUpload> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(fingerprint)
            .cloned()
    }

    fn put(&self, fingerprint: &str, upload: &StoredUpload) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(fingerprint.to_string(), upload.clone());
    }

    fn remove(&self, fingerprint: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(fingerprint);
    }
}

/// A store in a directory: one small file per upload, named by its
/// fingerprint, holding the URL (and on a second line the expiry). Written to a temporary name and renamed,
/// so a crash never leaves half a URL.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStore { dir: dir.into() }
    }

    /// `$XDG_CONFIG_HOME/uploadtask/resumable`, else
    /// `$HOME/.config/uploadtask/resumable`; `None` without either.
    pub fn default_dir() -> Option<PathBuf> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })?;
        Some(config.join("uploadtask").join("resumable"))
    }

    fn path(&self, fingerprint: &str) -> Option<PathBuf> {
        // Fingerprints are hex; anything else never names a file.
        let safe = !fingerprint.is_empty() && fingerprint.bytes().all(|b| b.is_ascii_alphanumeric());
        safe.then(|| self.dir.join(fingerprint))
    }
}

impl ResumeStore for DirStore {
    fn get(&self, fingerprint: &str) -> Option<StoredUpload> {
        let text = std::fs::read_to_string(self.path(fingerprint)?).ok()?;
        let mut lines = text.lines().map(str::trim);
        let url = lines.next().filter(|u| !u.is_empty())?.to_string();
        let expires = lines.next().filter(|e| !e.is_empty()).map(str::to_string);
        Some(StoredUpload { url, expires })
    }

    fn put(&self, fingerprint: &str, upload: &StoredUpload) {
        let Some(path) = self.path(fingerprint) else { return };
        let write = || -> io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let temporary = path.with_extension("tmp");
            let expires = upload.expires.as_deref().unwrap_or("");
            std::fs::write(&temporary, format!("{}\n{expires}\n", upload.url))?;
            std::fs::rename(&temporary, &path)
        };
        if let Err(e) = write() {
            log::warn!(
                "uploadtask: cannot store the upload resource in {}: {e}",
                self.dir.display()
            );
        }
    }

    fn remove(&self, fingerprint: &str) {
        if let Some(path) = self.path(fingerprint) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The store a client uses when none is given: a [`DirStore`] in
/// [`DirStore::default_dir`], else in memory.
pub fn default_store() -> std::sync::Arc<dyn ResumeStore> {
    match DirStore::default_dir() {
        Some(dir) => std::sync::Arc::new(DirStore::new(dir)),
        None => std::sync::Arc::new(MemoryStore::default()),
    }
}

/// The fingerprint of `source` (opened from `path`) uploaded to `endpoint`
/// with `protocol`: hex sha256 over them, the size, the mtime, and the first
/// and last MiB of the bytes.
pub fn fingerprint(protocol: &str, endpoint: &str, path: &str, source: &dyn BodySource) -> io::Result<String> {
    const MIB: u64 = 1024 * 1024;
    let len = source.len();
    let mut hasher = Sha256::new();
    for part in [protocol, endpoint, path] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update(len.to_le_bytes());
    let mtime = source
        .file()
        .and_then(|f| f.metadata().ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    hasher.update(mtime.to_le_bytes());
    let mut buf = vec![0; MIB.min(len) as usize];
    for start in [0, len.saturating_sub(MIB)] {
        let mut filled = 0;
        while filled < buf.len() {
            match source.read_at(start + filled as u64, &mut buf[filled..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank")),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        hasher.update(&buf);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uploadtask_engine::source::MemorySource;

    #[test]
    fn fingerprints_tell_files_and_endpoints_apart() {
        let a = MemorySource(bytes::Bytes::from(vec![1u8; 3 * 1024 * 1024]));
        let mut changed = vec![1u8; 3 * 1024 * 1024];
        changed[3 * 1024 * 1024 - 1] = 2;
        let b = MemorySource(bytes::Bytes::from(changed));
        let fa = fingerprint("tus", "http://h/files", "internal://x/a", &a).unwrap();
        assert_eq!(fa.len(), 64);
        assert_eq!(fa, fingerprint("tus", "http://h/files", "internal://x/a", &a).unwrap());
        assert_ne!(
            fa,
            fingerprint("tus", "http://h/files", "internal://x/a", &b).unwrap(),
            "last MiB"
        );
        assert_ne!(fa, fingerprint("ietf", "http://h/files", "internal://x/a", &a).unwrap());
        assert_ne!(fa, fingerprint("tus", "http://h/other", "internal://x/a", &a).unwrap());
    }

    #[test]
    fn dir_store_round_trips_and_refuses_odd_keys() {
        let dir = std::env::temp_dir().join(format!("uploadtask-store-{}", std::process::id()));
        let store = DirStore::new(&dir);
        let upload = StoredUpload {
            url: "http://h/files/1".into(),
            expires: Some("Wed, 25 Nov 2099 10:00:00 GMT".into()),
        };
        store.put("abc123", &upload);
        assert_eq!(store.get("abc123"), Some(upload.clone()));
        assert!(!upload.is_expired());
        let old = StoredUpload {
            expires: Some("Sun, 06 Nov 1994 08:49:37 GMT".into()),
            ..upload.clone()
        };
        assert!(old.is_expired());
        store.put("../escape", &upload);
        assert_eq!(store.get("../escape"), None);
        store.remove("abc123");
        assert_eq!(store.get("abc123"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// An object store's upload ids kept in a [`ResumeStore`] (as tus
/// resources are), for [`uploadtask_objects::run::S3Upload::store`].
#[derive(Debug)]
pub struct UploadIds(pub std::sync::Arc<dyn ResumeStore>);

impl uploadtask_objects::run::UploadIdStore for UploadIds {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).map(|s| s.url)
    }

    fn put(&self, key: &str, id: &str) {
        let kept = StoredUpload {
            url: id.to_string(),
            expires: None,
        };
        self.0.put(key, &kept);
    }

    fn remove(&self, key: &str) {
        self.0.remove(key);
    }
}
