//! The glue between an [`Exchange`] and a [`Transport`]: write what the
//! exchange asks for, read what the transport has, until `WouldBlock`.
//! The mio driver and the scripted-transport tests both use it, so the
//! tests exercise the very code that runs on real sockets.

use std::io::{self, IoSlice};
use std::ops::Deref;

use crate::io::source::BodySource;
use crate::io::transport::Transport;
use crate::proto::exchange::{Exchange, Piece, MAX_PIECES};

/// How a write pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFlow {
    /// The transport is full; wait for it to become writable.
    Blocked,
    /// The byte budget of this pass is spent; more remains.
    Yield,
    /// Nothing (more) to write, or writing failed (the exchange knows).
    Idle,
}

/// A file part that cannot be sent as announced (code 300).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError(pub String);

/// Writes until the transport blocks, the body is out, or `budget` bytes
/// moved. Returns the flow and the bytes written. Write errors go to the
/// exchange; only file problems are returned. `owner` identifies the
/// upload to `scratch` (any value unique among uploads sharing it).
///
/// Small pieces go out together: the head, the framing, and file regions
/// that fit `scratch` (read into it) make one vectored write, so a small
/// upload is one `writev`. A larger file region starts in that write (cut
/// to fit `scratch`), then goes alone, with `sendfile` when the transport
/// can, else through `scratch`. `sources` are
/// the file parts' sources (boxed, or as the engine keeps them).
pub fn pump_write<S: Deref<Target = dyn BodySource>>(
    owner: u64,
    exchange: &mut Exchange,
    transport: &mut dyn Transport,
    sources: &[S],
    scratch: &mut Scratch,
    budget: usize,
) -> Result<(WriteFlow, usize), FileError> {
    let mut moved = 0;
    if let Err(e) = transport.flush() {
        return Ok((blocked_or_failed(exchange, transport, e), moved));
    }
    exchange.handle_unflushed(0);
    loop {
        let room = scratch.buf.len().min(transport.max_write()) as u64;
        let (pieces, count) = exchange.poll_gather(room);
        if count == 0 {
            return Ok((WriteFlow::Idle, moved));
        }
        if moved >= budget {
            return Ok((WriteFlow::Yield, moved));
        }
        let (result, files) = match pieces[..count] {
            [Piece::File { part, offset, len }] if len > room => {
                let source = source(sources, part)?;
                let result = write_file(transport, (owner, part, source), offset, len, scratch)?;
                // Only when the region ends here is its file checked.
                let whole = matches!(result, Ok(n) if n as u64 == len);
                (
                    result,
                    if whole {
                        [Some(part), None, None, None]
                    } else {
                        [None; MAX_PIECES]
                    },
                )
            }
            _ => {
                scratch.held = None;
                write_gathered(transport, sources, &pieces[..count], &mut scratch.buf)?
            }
        };
        match result {
            Ok(0) => {
                exchange.handle_write_error(io::ErrorKind::WriteZero.into());
                return Ok((WriteFlow::Idle, moved));
            }
            Ok(n) => {
                exchange.handle_sent(n);
                moved += n;
                for part in files.into_iter().flatten() {
                    let source = source(sources, part)?;
                    if source.current_len().ok() != Some(source.len()) {
                        return Err(changed_size());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Ok((blocked_or_failed(exchange, transport, e), moved)),
        }
        exchange.handle_unflushed(transport.unflushed());
    }
}

/// Ends a write pass on an error: `WouldBlock` waits for the transport to
/// become writable; anything else is the exchange's write error.
fn blocked_or_failed(exchange: &mut Exchange, transport: &dyn Transport, error: io::Error) -> WriteFlow {
    if error.kind() == io::ErrorKind::WouldBlock {
        exchange.handle_unflushed(transport.unflushed());
        WriteFlow::Blocked
    } else {
        exchange.handle_write_error(error);
        WriteFlow::Idle
    }
}

fn changed_size() -> FileError {
    FileError("file changed size during the upload".into())
}

fn source<S: Deref<Target = dyn BodySource>>(sources: &[S], part: usize) -> Result<&dyn BodySource, FileError> {
    sources
        .get(part)
        .map(|s| &**s)
        .ok_or_else(|| FileError(format!("no source for file part {part}")))
}

/// Writes the pieces with one vectored call, file regions read into
/// `scratch` first (regions of sources in memory are written from there,
/// not copied). Returns the result and the file parts whose pieces were
/// written whole (to be checked for a size change: at the end of each
/// region, and where a gather cut one).
fn write_gathered<S: Deref<Target = dyn BodySource>>(
    transport: &mut dyn Transport,
    sources: &[S],
    pieces: &[Piece<'_>],
    scratch: &mut [u8],
) -> Result<(io::Result<usize>, [Option<usize>; MAX_PIECES]), FileError> {
    let mut ranges = [(0, 0); MAX_PIECES];
    let mut used = 0;
    for (piece, range) in pieces.iter().zip(ranges.iter_mut()) {
        if let Piece::File { part, offset, len } = *piece {
            let source = source(sources, part)?;
            if in_memory(source, offset, len).is_some() {
                continue;
            }
            let len = len as usize;
            read_exact_at(source, offset, &mut scratch[used..used + len])?;
            *range = (used, used + len);
            used += len;
        }
    }
    let mut slices = [IoSlice::new(&[]); MAX_PIECES];
    let mut ends = [(0usize, None); MAX_PIECES];
    let mut total = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let (bytes, part) = match *piece {
            Piece::Bytes(bytes) => (bytes, None),
            Piece::File { part, offset, len } => match in_memory(source(sources, part)?, offset, len) {
                Some(bytes) => (bytes, Some(part)),
                None => (&scratch[ranges[i].0..ranges[i].1], Some(part)),
            },
        };
        slices[i] = IoSlice::new(bytes);
        total += bytes.len();
        ends[i] = (total, part);
    }
    let result = transport.write_vectored(&slices[..pieces.len()]);
    let mut whole = [None; MAX_PIECES];
    if let Ok(n) = result {
        for (slot, (end, part)) in whole.iter_mut().zip(ends) {
            if end <= n {
                *slot = part;
            }
        }
    }
    Ok((result, whole))
}

/// `len` bytes at `offset` of a source held in memory, when it is one and
/// has them.
fn in_memory(source: &dyn BodySource, offset: u64, len: u64) -> Option<&[u8]> {
    let bytes = source.as_bytes()?;
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

/// Fills `buf` from `source` at `offset`; the source ending early means the
/// file shrank.
fn read_exact_at(source: &dyn BodySource, mut offset: u64, mut buf: &mut [u8]) -> Result<(), FileError> {
    while !buf.is_empty() {
        match source.read_at(offset, buf) {
            Ok(0) => return Err(changed_size()),
            Ok(n) => {
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FileError(format!("file read failed: {e}"))),
        }
    }
    Ok(())
}

/// The loop's buffer for file bytes, shared by all uploads. It remembers
/// whose bytes it holds, so that what a short write left unsent is written
/// next time without reading the file again.
#[derive(Debug)]
pub struct Scratch {
    buf: Box<[u8]>,
    held: Option<Held>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    owner: u64,
    part: usize,
    start: u64,
    len: usize,
}

impl Scratch {
    /// A buffer of `size` bytes (at least 1).
    pub fn new(size: usize) -> Self {
        Scratch {
            buf: vec![0; size.max(1)].into_boxed_slice(),
            held: None,
        }
    }

    /// Up to `want` bytes of `source` at `offset`: what the buffer still
    /// holds for `owner`, else read afresh. Empty at end of file.
    fn file_bytes(
        &mut self,
        owner: u64,
        part: usize,
        source: &dyn BodySource,
        offset: u64,
        want: usize,
    ) -> Result<&[u8], FileError> {
        if let Some(held) = self.held.filter(|h| h.owner == owner && h.part == part) {
            if (held.start..held.start + held.len as u64).contains(&offset) {
                let at = (offset - held.start) as usize;
                return Ok(&self.buf[at..held.len.min(at + want)]);
            }
        }
        self.held = None;
        let want = want.min(self.buf.len());
        let read = loop {
            match source.read_at(offset, &mut self.buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FileError(format!("file read failed: {e}"))),
                Ok(read) => break read,
            }
        };
        self.held = Some(Held {
            owner,
            part,
            start: offset,
            len: read,
        });
        Ok(&self.buf[..read])
    }
}

/// Sends file bytes with `sendfile` when the transport can, else through
/// `scratch`. The file ending before `len` is a [`FileError`]; `Ok(0)` is
/// the transport taking nothing (a write error for the exchange).
fn write_file(
    transport: &mut dyn Transport,
    (owner, part, source): (u64, usize, &dyn BodySource),
    offset: u64,
    len: u64,
    scratch: &mut Scratch,
) -> Result<io::Result<usize>, FileError> {
    if let Some(result) = source
        .file()
        .and_then(|file| transport.send_file(file, source.file_start().saturating_add(offset), len))
    {
        // sendfile(2) returns 0 only at the end of the file.
        return match result {
            Ok(0) => Err(changed_size()),
            result => Ok(result),
        };
    }
    let want = usize::try_from(len).unwrap_or(usize::MAX).min(transport.max_write());
    let bytes = scratch.file_bytes(owner, part, source, offset, want)?;
    if bytes.is_empty() {
        return Err(changed_size());
    }
    Ok(transport.write_vectored(&[IoSlice::new(bytes)]))
}

/// Appends exactly `len` body bytes of `exchange` to `out` (an HTTP/2
/// DATA frame's payload), file regions read from their sources; the
/// exchange counts them accepted. Once the whole body is out, every file
/// is checked for a change of size.
pub fn copy_body<S: Deref<Target = dyn BodySource>>(
    exchange: &mut Exchange,
    sources: &[S],
    len: usize,
    out: &mut Vec<u8>,
) -> Result<(), FileError> {
    let mut left = len;
    while left > 0 {
        let (pieces, count) = exchange.poll_gather(left as u64);
        if count == 0 {
            return Err(FileError("the body ended before its length".into()));
        }
        let mut taken = 0;
        for piece in &pieces[..count] {
            let room = left - taken;
            taken += match *piece {
                Piece::Bytes(bytes) => {
                    let take = bytes.len().min(room);
                    out.extend_from_slice(&bytes[..take]);
                    take
                }
                Piece::File { part, offset, len } => {
                    let take = usize::try_from(len).unwrap_or(usize::MAX).min(room);
                    let source = source(sources, part)?;
                    match in_memory(source, offset, take as u64) {
                        Some(bytes) => out.extend_from_slice(bytes),
                        None => {
                            let at = out.len();
                            out.resize(at + take, 0);
                            read_exact_at(source, offset, &mut out[at..])?;
                        }
                    }
                    take
                }
            };
            if taken == left {
                break;
            }
        }
        exchange.handle_sent(taken);
        left -= taken;
    }
    if exchange.body_accepted() && sources.iter().any(|s| s.current_len().ok() != Some(s.len())) {
        return Err(changed_size());
    }
    Ok(())
}

/// Reads until the transport blocks or the exchange is finished. Returns the
/// bytes read.
pub fn pump_read(exchange: &mut Exchange, transport: &mut dyn Transport, buf: &mut [u8]) -> usize {
    let mut moved = 0;
    while !exchange.is_finished() {
        match transport.read(buf) {
            Ok(0) => exchange.handle_eof(),
            Ok(n) => {
                moved += n;
                exchange.handle_received(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => exchange.handle_read_error(e),
        }
    }
    moved
}
