//! Byte streams the engine writes requests to and reads responses from.
//!
//! [`Transport`] is the seam: [`TcpTransport`] (plain, with `sendfile(2)`),
//! [`TlsTransport`] (rustls over any transport, with exact flush
//! accounting), and a scripted one for tests (the `testing` feature). A [`Connector`] opens transports for the engine:
//! [`TcpConnector`] by default; an embedder's own (a Unix domain socket, a
//! device's network stack, a simulated network) through
//! [`EngineConfig::connector`](crate::config::EngineConfig::connector). TLS is
//! layered by the engine on whatever the connector returns.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// When file regions go out with `sendfile(2)` on plain TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sendfile {
    /// Except to loopback peers (the default). Measured on loopback,
    /// `sendfile` costs more than a copy: there is no device to save work
    /// for, and the receiver's path (which loopback runs in the sender's
    /// context) handles page fragments more slowly. See docs/BENCHMARKS.md.
    #[default]
    Auto,
    /// Always, where the platform has it.
    Always,
    /// Never: file bytes are read into the loop's buffer and written.
    Never,
}

/// Opens byte streams for the engine, on the engine thread. Must not block:
/// a connection still being set up reports so through
/// [`Transport::connected`].
pub trait Connector: Send + Sync {
    /// Starts a connection to `addr`, one of the addresses the resolver gave
    /// for `host`. The engine registers the transport with its poller and
    /// layers TLS on it for `https`.
    fn connect(&self, addr: SocketAddr, host: &str) -> io::Result<Box<dyn Transport>>;
}

/// Non-blocking TCP, with `TCP_NODELAY` and the engine's `sendfile` policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector {
    /// When file regions go out with `sendfile(2)`.
    pub sendfile: Sendfile,
}

impl Connector for TcpConnector {
    fn connect(&self, addr: SocketAddr, _host: &str) -> io::Result<Box<dyn Transport>> {
        let stream = TcpStream::connect(addr)?;
        let _ = stream.set_nodelay(true);
        let sendfile = match self.sendfile {
            Sendfile::Always => true,
            Sendfile::Never => false,
            Sendfile::Auto => !addr.ip().is_loopback(),
        };
        Ok(Box::new(TcpTransport::new(stream, sendfile)))
    }
}

/// Largest plaintext fed to TLS at once: four full records (16 KiB each),
/// whose ciphertext then goes out with one vectored system call. Progress
/// still counts only bytes whose records all went out
/// ([`Transport::unflushed`]).
pub const TLS_PIECE: usize = 64 * 1024;

/// A non-blocking byte stream. Every method may return `WouldBlock`.
pub trait Transport: Send {
    /// Whether the connection is set up: `Ok(false)` while a non-blocking
    /// connect is under way (the engine asks again on the next event), an
    /// error when it failed.
    fn connected(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    /// Writes from `bufs` in order; returns how many bytes were accepted.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Writes `len` bytes of `file` from `offset` without a user-space copy,
    /// if this transport can. `None` means it cannot; the caller then reads
    /// the file itself and uses `write_vectored`.
    fn send_file(&mut self, _file: &File, _offset: u64, _len: u64) -> Option<io::Result<usize>> {
        None
    }

    /// The most bytes one write can take; larger file reads would be wasted.
    fn max_write(&self) -> usize {
        usize::MAX
    }

    /// Reads response bytes. `Ok(0)` is a clean end of stream (on TLS: after
    /// close_notify).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Pushes out accepted bytes still buffered in user space (those
    /// [`Transport::unflushed`] counts); `WouldBlock` while some remain.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// How many accepted bytes are still in user-space buffers.
    fn unflushed(&self) -> usize {
        0
    }

    /// Advances a handshake; `Ok(true)` once it is done.
    fn handshake(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    /// True when TLS negotiated HTTP/2 (ALPN `h2`).
    fn negotiated_h2(&self) -> bool {
        false
    }

    /// Called on an idle pooled connection before it carries another
    /// request: `false` when the peer closed it, reset it, or sent bytes
    /// nobody asked for (the connection must then be dropped). Must not
    /// block.
    fn is_reusable(&mut self) -> bool {
        true
    }

    /// Bytes handed to the kernel on this connection so far (TLS records
    /// included), for acknowledged progress; 0 when not counted.
    fn wire_written(&self) -> u64 {
        0
    }

    /// The TCP socket's local and peer addresses, for asking the kernel what
    /// the peer acknowledged; `None` when there is no such socket.
    fn tcp_addrs(&mut self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        None
    }

    /// Registers the underlying socket with the event loop.
    fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()>;

    /// Removes the underlying socket from the event loop.
    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
}

/// Plain TCP, with `sendfile(2)` for file regions when enabled.
#[derive(Debug)]
pub struct TcpTransport {
    stream: TcpStream,
    sendfile: bool,
    written: u64,
}

impl TcpTransport {
    /// Wraps a connected (or connecting) stream; `sendfile` says whether file
    /// regions go out with `sendfile(2)` or through the caller's buffer.
    pub fn new(stream: TcpStream, sendfile: bool) -> Self {
        TcpTransport {
            stream,
            sendfile,
            written: 0,
        }
    }

    /// The stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Transport for TcpTransport {
    fn connected(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = self.stream.write_vectored(bufs)?;
        self.written += n as u64;
        Ok(n)
    }

    fn wire_written(&self) -> u64 {
        self.written
    }

    /// Two system calls (`getsockname`, `getpeername`): only acknowledged
    /// progress asks, and nothing is kept per connection.
    fn tcp_addrs(&mut self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        Some((self.stream.local_addr().ok()?, self.stream.peer_addr().ok()?))
    }

    /// `sendfile(2)` on Linux and Android; elsewhere the caller's buffer.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> Option<io::Result<usize>> {
        if !self.sendfile {
            return None;
        }
        let mut position = offset;
        let count = usize::try_from(len).unwrap_or(usize::MAX).min(1 << 30);
        let result = rustix::fs::sendfile(&self.stream, file, Some(&mut position), count).map_err(io::Error::from);
        if let Ok(n) = result {
            self.written += n as u64;
        }
        Some(result)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    /// A one-byte `MSG_PEEK`: nothing to read (`WouldBlock`) is the only
    /// good answer; a FIN (`Ok(0)`), stray bytes or an error are not.
    fn is_reusable(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        registry.register(&mut self.stream, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.stream)
    }
}

/// A transport seen as `io::Read + io::Write`, for rustls.
struct Io<'a>(&'a mut dyn Transport);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// TLS with rustls over any transport (TCP by default).
///
/// Exact progress: a plaintext piece (at most [`TLS_PIECE`], packed into
/// full records) is fed only when no earlier piece's records wait; once its
/// records have been written to the socket whole, every byte fed so far is
/// on the wire. Until then [`Transport::unflushed`] reports the piece.
///
/// The handshake's last flight (the client's Finished) is not written
/// alone: it goes in the same write as the first request's records, so the
/// server gets both in one segment and one read.
pub struct TlsTransport {
    inner: Box<dyn Transport>,
    tls: rustls::ClientConnection,
    pending_plaintext: usize,
    eof: bool,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("pending_plaintext", &self.pending_plaintext)
            .finish_non_exhaustive()
    }
}

impl TlsTransport {
    /// Starts a client handshake for `server_name` over `inner`.
    pub fn new(inner: Box<dyn Transport>, config: Arc<rustls::ClientConfig>, server_name: &str) -> io::Result<Self> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        // What one write may feed (see `write_vectored`).
        tls.set_buffer_limit(Some(TLS_PIECE));
        Ok(TlsTransport {
            inner,
            tls,
            pending_plaintext: 0,
            eof: false,
        })
    }

    /// Writes TLS records until none are left or the socket is full.
    fn drain(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut Io(self.inner.as_mut()))?;
        }
        self.pending_plaintext = 0;
        Ok(())
    }

    /// Reads TLS records and processes them; `Ok(false)` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let n = self.tls.read_tls(&mut Io(self.inner.as_mut()))?;
        if n == 0 {
            self.eof = true;
        }
        self.tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n > 0)
    }
}

impl Transport for TlsTransport {
    fn max_write(&self) -> usize {
        TLS_PIECE
    }

    /// Feeds the pieces in one call, so that rustls packs them into full
    /// records (a head, its framing and the body's start share one, instead
    /// of a record each); its buffer limit (`TLS_PIECE`, counting a
    /// handshake flight still buffered) caps what one call takes.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.flush()?;
        let mut fed = self.tls.writer().write_vectored(bufs)?;
        if fed == 0 && self.tls.wants_write() {
            // A last handshake flight that fills the buffer limit goes first.
            self.drain()?;
            fed = self.tls.writer().write_vectored(bufs)?;
        }
        self.pending_plaintext = fed;
        match self.drain() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(fed),
            Err(e) => Err(e),
            Ok(()) => Ok(fed),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // No plaintext buffered: read more records. After EOF the
                    // reader says clean close (Ok(0)) or UnexpectedEof.
                    let eof_before = self.eof;
                    if !self.fill()? && eof_before {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    if self.tls.wants_write() {
                        // Alerts or key updates; a full socket is retried later.
                        let _ = self.drain();
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending_plaintext > 0 {
            self.drain()
        } else {
            Ok(())
        }
    }

    /// Reads what the socket holds (TLS 1.3 session tickets are fine) and
    /// refuses plaintext, close_notify, EOF, or any error.
    fn is_reusable(&mut self) -> bool {
        if self.eof {
            return false;
        }
        loop {
            match self.tls.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                _ => return false,
            }
            match self.tls.read_tls(&mut Io(self.inner.as_mut())) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    fn unflushed(&self) -> usize {
        if self.tls.wants_write() {
            self.pending_plaintext
        } else {
            0
        }
    }

    fn handshake(&mut self) -> io::Result<bool> {
        loop {
            if !self.tls.is_handshaking() {
                // A last flight waits for the first write.
                return Ok(true);
            }
            self.drain()?;
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during TLS handshake",
                ));
            }
        }
    }

    fn wire_written(&self) -> u64 {
        self.inner.wire_written()
    }

    fn negotiated_h2(&self) -> bool {
        self.tls.alpn_protocol() == Some(b"h2")
    }

    fn tcp_addrs(&mut self) -> Option<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.inner.tcp_addrs()
    }

    fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        self.inner.register(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The bytes of each write a [`ToServer`] took, and the plaintext its
    /// server read.
    #[derive(Default)]
    struct Seen {
        writes: Vec<usize>,
        plaintext: Vec<u8>,
    }

    /// A transport to a rustls server in memory, which answers each write at
    /// once; records what it saw.
    struct ToServer {
        server: rustls::ServerConnection,
        answer: Vec<u8>,
        seen: Arc<Mutex<Seen>>,
    }

    impl Transport for ToServer {
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let bytes: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let mut seen = self.seen.lock().unwrap();
            seen.writes.push(bytes.len());
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                self.server.read_tls(&mut rest)?;
                self.server.process_new_packets().map_err(io::Error::other)?;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = self.server.reader().read(&mut buf) {
                seen.plaintext.extend_from_slice(&buf[..n]);
            }
            while self.server.wants_write() {
                self.server.write_tls(&mut self.answer)?;
            }
            Ok(bytes.len())
        }

        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.answer.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.answer.len());
            buf[..n].copy_from_slice(&self.answer[..n]);
            self.answer.drain(..n);
            Ok(n)
        }

        fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
            Ok(())
        }

        fn deregister(&mut self, _: &Registry) -> io::Result<()> {
            Ok(())
        }
    }

    /// A finished handshake with a server in memory, and what it saw.
    fn handshaken() -> (TlsTransport, Arc<Mutex<Seen>>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let client_config = crate::config::EngineConfig {
            extra_roots: vec![cert],
            ..crate::config::EngineConfig::default()
        }
        .tls_config()
        .unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let inner = ToServer {
            server: rustls::ServerConnection::new(Arc::new(server_config)).unwrap(),
            answer: Vec::new(),
            seen: Arc::clone(&seen),
        };
        let mut tls = TlsTransport::new(Box::new(inner), client_config, "localhost").unwrap();
        // The server answers within each write, so two rounds are enough.
        let mut done = false;
        for _ in 0..2 {
            match tls.handshake() {
                Ok(true) => {
                    done = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("handshake: {other:?}"),
            }
        }
        assert!(done, "the handshake ended");
        (tls, seen)
    }

    const REQUEST: &[u8] = b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn the_last_handshake_flight_shares_a_write_with_the_first_request_bytes() {
        let (mut tls, seen) = handshaken();
        assert_eq!(seen.lock().unwrap().writes.len(), 1, "only the ClientHello went out");
        assert_eq!(tls.write_vectored(&[IoSlice::new(REQUEST)]).unwrap(), REQUEST.len());
        assert_eq!(tls.unflushed(), 0);
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.writes.len(),
            2,
            "the Finished went with the request: {:?}",
            seen.writes
        );
        assert_eq!(seen.plaintext, REQUEST);
    }

    #[test]
    fn a_last_flight_larger_than_the_buffer_limit_goes_first() {
        let (mut tls, seen) = handshaken();
        // The Finished alone is over this limit: nothing could be fed with it.
        tls.tls.set_buffer_limit(Some(10));
        let mut fed = 0;
        while fed < REQUEST.len() {
            let n = tls.write_vectored(&[IoSlice::new(&REQUEST[fed..])]).unwrap();
            assert!(n > 0, "a write took nothing after {fed} bytes");
            fed += n;
        }
        assert_eq!(tls.unflushed(), 0);
        assert_eq!(seen.lock().unwrap().plaintext, REQUEST);
    }
}
