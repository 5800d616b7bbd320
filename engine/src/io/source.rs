//! Where file parts' bytes come from: a file opened once (its size from the
//! open handle), or bytes in memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The bytes of one file part. Reads are positional, so two uploads of the
/// same file never share a position.
pub trait BodySource: Send {
    /// Length fixed when the upload started; the Content-Length relies on it.
    fn len(&self) -> u64;

    /// True when `len()` is zero.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads at `offset`; `Ok(0)` before `len()` means the source shrank.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// The file, when the transport may send it with `sendfile(2)`.
    fn file(&self) -> Option<&File> {
        None
    }

    /// Where the source's byte 0 is in [`BodySource::file`] (a window of a
    /// file starts further in).
    fn file_start(&self) -> u64 {
        0
    }

    /// The length now, to detect a file that changed during the upload.
    fn current_len(&self) -> io::Result<u64> {
        Ok(self.len())
    }

    /// A second handle on the same bytes, for work off the loop (a
    /// resumable piece's checksum); `None` when it cannot be shared.
    fn try_clone(&self) -> Option<Box<dyn BodySource>> {
        None
    }

    /// All the bytes, when they are in memory: written from there, with no
    /// copy into the loop's buffer.
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }
}

/// A regular file, opened once.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u64,
}

/// Opens `path` for reading without ever blocking: `O_NONBLOCK` makes
/// `open(2)` of a FIFO with no writer return at once (a device opens at
/// once too); [`FileSource::from_file`] then refuses both before any read.
pub fn open_nonblocking(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())?;
    Ok(File::from(fd))
}

impl FileSource {
    /// Opens `path` for reading (without blocking, see
    /// [`open_nonblocking`]); refuses anything but a regular file.
    pub fn open(path: &Path) -> io::Result<FileSource> {
        FileSource::from_file(open_nonblocking(path)?)
    }

    /// Takes an open file; its size comes from the handle (`fstat`).
    /// Anything but a regular file (a FIFO, a device, a directory) is
    /// refused with `InvalidInput` before a byte is read.
    pub fn from_file(file: File) -> io::Result<FileSource> {
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(FileSource {
            len: metadata.len(),
            file,
        })
    }
}

impl BodySource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }

    fn current_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn try_clone(&self) -> Option<Box<dyn BodySource>> {
        let file = self.file.try_clone().ok()?;
        Some(Box::new(FileSource { file, len: self.len }))
    }
}

/// A window of a file shared by several uploads (the parts of one object,
/// say): `len` bytes from `start`, read positionally.
#[derive(Debug, Clone)]
pub struct FileWindow {
    file: std::sync::Arc<File>,
    start: u64,
    len: u64,
}

impl FileWindow {
    /// The window `start..start + len` of `file`.
    pub fn new(file: std::sync::Arc<File>, start: u64, len: u64) -> FileWindow {
        FileWindow { file, start, len }
    }
}

impl BodySource for FileWindow {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(offset);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        self.file.read_at(&mut buf[..n], self.start.saturating_add(offset))
    }

    fn file(&self) -> Option<&File> {
        Some(&self.file)
    }

    fn file_start(&self) -> u64 {
        self.start
    }

    /// The window's length while the file still covers it.
    fn current_len(&self) -> io::Result<u64> {
        let file_len = self.file.metadata()?.len();
        Ok(file_len.saturating_sub(self.start).min(self.len))
    }

    fn try_clone(&self) -> Option<Box<dyn BodySource>> {
        Some(Box::new(self.clone()))
    }
}

/// Bytes in memory, shared without copies (`bytes::Bytes`).
#[derive(Debug, Clone)]
pub struct MemorySource(pub bytes::Bytes);

impl BodySource for MemorySource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
        let n = buf.len().min(self.0.len() - start);
        buf[..n].copy_from_slice(&self.0[start..start + n]);
        Ok(n)
    }

    fn try_clone(&self) -> Option<Box<dyn BodySource>> {
        Some(Box::new(self.clone()))
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        Some(&self.0)
    }
}

/// A part's source as an upload keeps it: bytes in memory without a box
/// (nothing allocated for them), anything else boxed.
pub(crate) enum Source {
    Memory(MemorySource),
    Boxed(Box<dyn BodySource>),
}

impl std::ops::Deref for Source {
    type Target = dyn BodySource;

    fn deref(&self) -> &(dyn BodySource + 'static) {
        match self {
            Source::Memory(memory) => memory,
            Source::Boxed(boxed) => &**boxed,
        }
    }
}

/// The `sha1` of `len` bytes of `source` from `start`, in 64 KiB reads.
pub fn sha1_of(source: &dyn BodySource, start: u64, len: u64) -> io::Result<[u8; 20]> {
    use sha1::Digest as _;
    let mut hasher = sha1::Sha1::new();
    let mut buf = vec![0; 64 * 1024];
    let mut at = start;
    let end = start.saturating_add(len);
    while at < end {
        let want = usize::try_from(end - at).unwrap_or(usize::MAX).min(buf.len());
        match source.read_at(at, &mut buf[..want]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank")),
            Ok(n) => {
                hasher.update(&buf[..n]);
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().into())
}
