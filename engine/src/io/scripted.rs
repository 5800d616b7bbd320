//! An in-memory [`Transport`] that follows a script: short writes,
//! `WouldBlock`, errors and EOF at chosen points. For tests.
//!
//! It runs under the pump alone, or through the real engine (timers, pool,
//! retry) with a [`ScriptedConnector`]: registered with the loop, it gets
//! readiness from a Unix socket pair on its token (a byte written to one
//! end makes the registered end readable). It wakes the loop once when
//! registered, again after each scripted `WouldBlock` (the peer is ready
//! again at once) and after each accepted write while its read script has
//! steps left (the peer has something to say); once its read script has run
//! out it stays silent, like a peer that says nothing more.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mio::{Interest, Registry, Token};

use crate::io::transport::{Connector, Transport};

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

/// How a scripted transport's connect goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectStep {
    /// Connected at once (the default).
    #[default]
    Now,
    /// Never completes (a peer that drops SYNs).
    Never,
    /// Refused.
    Refused,
    /// Completes this long after it started.
    Late(std::time::Duration),
}

/// A scripted transport. Once a script runs out, writes accept everything
/// and reads return `WouldBlock`.
#[derive(Debug, Default)]
pub struct ScriptedTransport {
    connect: ConnectStep,
    /// When a `Late` connect completes (set when registered).
    connected_at: Option<std::time::Instant>,
    writes: VecDeque<WriteStep>,
    reads: VecDeque<ReadStep>,
    /// Every byte accepted, in order.
    pub written: Vec<u8>,
    /// A copy of every byte accepted, for a test that gave the transport away.
    tap: Option<Arc<Mutex<Vec<u8>>>>,
    /// The registered end and the end written to wake the loop.
    signal: Option<(mio::net::UnixStream, mio::net::UnixStream)>,
}

impl ScriptedTransport {
    /// A transport with these scripts.
    pub fn new(writes: impl IntoIterator<Item = WriteStep>, reads: impl IntoIterator<Item = ReadStep>) -> Self {
        ScriptedTransport {
            writes: writes.into_iter().collect(),
            reads: reads.into_iter().collect(),
            ..ScriptedTransport::default()
        }
    }

    /// Connects as `step` says.
    pub fn with_connect(mut self, step: ConnectStep) -> Self {
        self.connect = step;
        self
    }

    /// Also copies every accepted byte to `tap`.
    pub fn with_tap(mut self, tap: Arc<Mutex<Vec<u8>>>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Empties the registered end, then writes one byte: a fresh edge.
    fn wake(&mut self) {
        use std::io::{Read, Write};
        if let Some((registered, writer)) = &mut self.signal {
            let mut sink = [0u8; 64];
            while matches!(registered.read(&mut sink), Ok(n) if n > 0) {}
            let _ = writer.write(&[1]);
        }
    }
}

impl Transport for ScriptedTransport {
    fn connected(&mut self) -> io::Result<bool> {
        match self.connect {
            ConnectStep::Now => Ok(true),
            ConnectStep::Never => Ok(false),
            ConnectStep::Refused => Err(io::ErrorKind::ConnectionRefused.into()),
            ConnectStep::Late(_) => Ok(self.connected_at.is_some_and(|at| std::time::Instant::now() >= at)),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let limit = match self.writes.pop_front() {
            None => usize::MAX,
            Some(WriteStep::Accept(n)) => n,
            Some(WriteStep::WouldBlock) => {
                self.wake();
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Some(WriteStep::Fail(kind)) => return Err(kind.into()),
        };
        let mut accepted = 0;
        for buf in bufs {
            let take = buf.len().min(limit - accepted);
            self.written.extend_from_slice(&buf[..take]);
            if let Some(tap) = &self.tap {
                tap.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..take]);
            }
            accepted += take;
        }
        if !self.reads.is_empty() {
            // The peer has something to say: it becomes readable.
            self.wake();
        }
        Ok(accepted)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reads.pop_front() {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(ReadStep::WouldBlock) => {
                self.wake();
                Err(io::ErrorKind::WouldBlock.into())
            }
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

    fn register(&mut self, registry: &Registry, token: Token, _: Interest) -> io::Result<()> {
        let (registered, writer) = std::os::unix::net::UnixStream::pair()?;
        registered.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        if let ConnectStep::Late(after) = self.connect {
            // The peer answers later: an edge then, from a thread of its own.
            self.connected_at = std::time::Instant::now().checked_add(after);
            let mut late = writer.try_clone()?;
            std::thread::spawn(move || {
                use std::io::Write;
                std::thread::sleep(after);
                let _ = late.write(&[1]);
            });
        }
        let mut registered = mio::net::UnixStream::from_std(registered);
        registry.register(&mut registered, token, Interest::READABLE)?;
        self.signal = Some((registered, mio::net::UnixStream::from_std(writer)));
        if self.connect != ConnectStep::Never {
            self.wake();
        }
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        if let Some((mut registered, _)) = self.signal.take() {
            registry.deregister(&mut registered)?;
        }
        Ok(())
    }
}

/// Hands out scripted transports, one per connect, in order; refuses
/// connects once they run out. Counts the connects.
#[derive(Debug, Default)]
pub struct ScriptedConnector {
    transports: Mutex<VecDeque<ScriptedTransport>>,
    connects: std::sync::atomic::AtomicUsize,
}

impl ScriptedConnector {
    /// A connector that hands out `transports` in order.
    pub fn new(transports: impl IntoIterator<Item = ScriptedTransport>) -> Self {
        ScriptedConnector {
            transports: Mutex::new(transports.into_iter().collect()),
            connects: Default::default(),
        }
    }

    /// Connects asked for so far.
    pub fn connects(&self) -> usize {
        self.connects.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Connector for ScriptedConnector {
    fn connect(&self, _addr: SocketAddr, _host: &str) -> io::Result<Box<dyn Transport>> {
        self.connects.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match self.transports.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
            Some(transport) => Ok(Box::new(transport)),
            None => Err(io::ErrorKind::ConnectionRefused.into()),
        }
    }
}
