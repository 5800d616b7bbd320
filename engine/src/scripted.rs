//! An in-memory [`Transport`] that follows a script: short writes,
//! `WouldBlock`, errors and EOF at chosen points. For tests.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use mio::{Interest, Registry, Token};

use crate::transport::Transport;

/// What the next write call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteStep {
    /// Accept at most this many bytes.
    Accept(usize),
    /// Return `WouldBlock`.
    WouldBlock,
    /// Fail with this error kind.
    Fail(io::ErrorKind),
}

/// What the next read call does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadStep {
    /// Return these bytes (as many as fit, the rest next time).
    Data(Vec<u8>),
    /// Return `WouldBlock`.
    WouldBlock,
    /// Return end of stream.
    Eof,
    /// Fail with this error kind.
    Fail(io::ErrorKind),
}

/// A scripted transport. Once a script runs out, writes accept everything
/// and reads return `WouldBlock`.
#[derive(Debug, Default)]
pub struct ScriptedTransport {
    writes: VecDeque<WriteStep>,
    reads: VecDeque<ReadStep>,
    /// Every byte accepted, in order.
    pub written: Vec<u8>,
}

impl ScriptedTransport {
    /// A transport with these scripts.
    pub fn new(writes: impl IntoIterator<Item = WriteStep>, reads: impl IntoIterator<Item = ReadStep>) -> Self {
        ScriptedTransport {
            writes: writes.into_iter().collect(),
            reads: reads.into_iter().collect(),
            written: Vec::new(),
        }
    }
}

impl Transport for ScriptedTransport {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let limit = match self.writes.pop_front() {
            None => usize::MAX,
            Some(WriteStep::Accept(n)) => n,
            Some(WriteStep::WouldBlock) => return Err(io::ErrorKind::WouldBlock.into()),
            Some(WriteStep::Fail(kind)) => return Err(kind.into()),
        };
        let mut accepted = 0;
        for buf in bufs {
            let take = buf.len().min(limit - accepted);
            self.written.extend_from_slice(&buf[..take]);
            accepted += take;
        }
        Ok(accepted)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reads.pop_front() {
            None | Some(ReadStep::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Some(ReadStep::Eof) => Ok(0),
            Some(ReadStep::Fail(kind)) => Err(kind.into()),
            Some(ReadStep::Data(mut data)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    self.reads.push_front(ReadStep::Data(data.split_off(n)));
                }
                Ok(n)
            }
        }
    }

    fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }

    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}
