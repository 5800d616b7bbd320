//! The glue between an [`Exchange`] and a [`Transport`]: write what the
//! exchange asks for, read what the transport has, until `WouldBlock`.
//! The mio driver and the scripted-transport tests both use it, so the
//! tests exercise the very code that runs on real sockets.

use std::io::{self, IoSlice};

use crate::exchange::{Exchange, Transmit};
use crate::source::BodySource;
use crate::transport::Transport;

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
/// exchange; only file problems are returned.
pub fn pump_write(
    exchange: &mut Exchange,
    transport: &mut dyn Transport,
    sources: &[Box<dyn BodySource>],
    scratch: &mut [u8],
    budget: usize,
) -> Result<(WriteFlow, usize), FileError> {
    let mut moved = 0;
    match transport.flush() {
        Ok(()) => exchange.handle_unflushed(0),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            exchange.handle_unflushed(transport.unflushed());
            return Ok((WriteFlow::Blocked, moved));
        }
        Err(e) => {
            exchange.handle_write_error(e);
            return Ok((WriteFlow::Idle, moved));
        }
    }
    loop {
        let Some(transmit) = exchange.poll_transmit() else {
            return Ok((WriteFlow::Idle, moved));
        };
        if moved >= budget {
            return Ok((WriteFlow::Yield, moved));
        }
        let (result, file_part) = match transmit {
            Transmit::Bytes([a, b]) => (transport.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]), None),
            Transmit::File { part, offset, len } => {
                let source = sources
                    .get(part)
                    .ok_or_else(|| FileError(format!("no source for file part {part}")))?;
                (
                    write_file(transport, source.as_ref(), offset, len, scratch)?,
                    Some((source, len)),
                )
            }
        };
        match result {
            Ok(0) if file_part.is_some() => return Err(FileError("file changed size during the upload".into())),
            Ok(0) => {
                exchange.handle_write_error(io::ErrorKind::WriteZero.into());
                return Ok((WriteFlow::Idle, moved));
            }
            Ok(n) => {
                exchange.handle_sent(n);
                moved += n;
                if let Some((source, len)) = file_part {
                    if n as u64 == len && source.current_len().ok() != Some(source.len()) {
                        return Err(FileError("file changed size during the upload".into()));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                exchange.handle_unflushed(transport.unflushed());
                return Ok((WriteFlow::Blocked, moved));
            }
            Err(e) => {
                exchange.handle_write_error(e);
                return Ok((WriteFlow::Idle, moved));
            }
        }
        exchange.handle_unflushed(transport.unflushed());
    }
}

/// Sends file bytes with `sendfile` when the transport can, else through
/// `scratch`. `Ok(0)` means the file ended early.
fn write_file(
    transport: &mut dyn Transport,
    source: &dyn BodySource,
    offset: u64,
    len: u64,
    scratch: &mut [u8],
) -> Result<io::Result<usize>, FileError> {
    if let Some(result) = source.file().and_then(|file| transport.send_file(file, offset, len)) {
        return Ok(result);
    }
    let want = usize::try_from(len).unwrap_or(usize::MAX).min(scratch.len());
    let read = loop {
        match source.read_at(offset, &mut scratch[..want]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileError(format!("file read failed: {e}"))),
            Ok(read) => break read,
        }
    };
    if read == 0 {
        return Ok(Ok(0));
    }
    Ok(transport.write_vectored(&[IoSlice::new(&scratch[..read])]))
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
