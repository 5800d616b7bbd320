//! Connection setup for an upload: the name lookup, the connect to each
//! address, a `CONNECT` tunnel through a proxy, the TLS handshake, and the
//! `Expect: 100-continue` wait that depends on the connection's round trip.
//! The upload's life ([`crate::proto::upload::Upload`]) decides each step; these
//! methods perform them.

use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use super::conns::{ConnIo, ConnKey};
use super::uploads::{Key, UploadSlot};
use super::Command;
use super::{origin_of, Loop};
use crate::error::describe_tls;
use crate::error::ErrorKind;
use crate::error::UploadError;
use crate::io::transport::TlsTransport;
use crate::proto::names::Lookup;
use crate::proto::proxy::{Tunnel, TunnelStatus};
use crate::proto::upload::Phase;

impl Loop {
    /// An exchange starting on a connection: with `Expect: 100-continue`, its
    /// body waits a few of this connection's round trips at most.
    pub(super) fn arm_expect(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        let rtt = slot
            .conn
            .and_then(|c| self.conns.get(c))
            .filter(|c| c.rtt_us > 0)
            .map(|c| Duration::from_micros(u64::from(c.rtt_us)));
        let Some(slot) = self.uploads.get(key) else { return };
        let (Some(transfer), Some(exchange)) = (slot.transfer.as_ref(), slot.exchange.as_mut()) else {
            return;
        };
        if let Some(wait) = transfer.expect_wait(exchange.body().content_length(), rtt) {
            exchange.expect_continue(wait);
        }
    }

    pub(super) fn resolve(&mut self, key: Key) {
        self.drop_conn(key);
        let Some(slot) = self.uploads.get(key) else { return };
        let (host, port) = slot.connect_point();
        // An IP literal needs no lookup (and no resolver thread).
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return self.on_resolved(key, Ok(vec![SocketAddr::new(ip, port)]));
        }
        match self.names.handle_need(&host, port, key, self.now) {
            Lookup::Known(addrs) => return self.on_resolved(key, Ok(addrs)),
            Lookup::Wait => return,
            Lookup::Ask => {}
        }
        let answer = Answer {
            mailbox: Some(self.mailbox.clone()),
            host: Arc::clone(&host),
            port,
        };
        let done: crate::io::resolver::ResolveDone = Box::new(move |result| answer.send(result));
        // An embedder's resolver is app code too: a panic drops `done`,
        // whose answer then fails the uploads that need the name.
        if catch_unwind(AssertUnwindSafe(|| self.resolver.resolve(&host, port, done))).is_err() {
            log::error!("uploadtask: the resolver panicked for {host}");
        }
    }

    /// An upload failed while connecting (every address tried): the name's
    /// kept answer is dropped.
    pub(super) fn forget_unreachable(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        if slot.life.phase() == Phase::Connecting {
            let (host, port) = slot.connect_point();
            self.names.handle_unreachable(&host, port);
        }
    }

    /// A lookup answered: every upload that needs the name gets the answer.
    pub(super) fn on_lookup(&mut self, host: Arc<str>, port: u16, result: io::Result<Vec<SocketAddr>>) {
        let now = self.now;
        let waiting = self
            .names
            .handle_answer(&host, port, result.as_deref().map_err(|_| ()), now);
        for key in waiting {
            let copy = match &result {
                Ok(addrs) => Ok(addrs.clone()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            self.on_resolved(key, copy);
        }
    }

    pub(super) fn on_resolved(&mut self, key: Key, mut result: io::Result<Vec<SocketAddr>>) {
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        if slot.life.phase() != Phase::Resolving {
            return;
        }
        if let Ok(addrs) = result.as_mut() {
            let (host, port) = slot.connect_point();
            self.names.prefer(&host, port, addrs, now);
        }
        let Some(slot) = self.uploads.get(key) else { return };
        let action = slot.life.handle_resolved(result, now);
        self.act(key, action);
    }

    /// Starts a connect attempt to `addr`: earlier attempts of the race go
    /// on (the first is the upload's `conn` until one wins, the others
    /// `racing`; a lookup before the race closed any earlier connection).
    pub(super) fn connect(&mut self, key: Key, addr: SocketAddr) {
        let Some(origin) = self.uploads.get(key).map(|slot| origin_of(slot)) else {
            return;
        };
        let now = self.now;
        match self
            .conns
            .connect(self.poll.registry(), self.connector.as_ref(), addr, origin, key, now)
        {
            Ok(conn) => {
                if let Some(slot) = self.uploads.get(key) {
                    match slot.conn {
                        None => slot.conn = Some(conn),
                        Some(_) => slot.racing.get_or_insert_with(Box::default).push(conn),
                    }
                }
            }
            Err(e) => {
                if let Some(slot) = self.uploads.get(key) {
                    let action = slot.life.handle_connect_failed(addr, e, now);
                    self.act(key, action);
                }
            }
        }
    }

    /// An event on one of the upload's connect attempts: a failure starts
    /// the next address; the first to connect wins, the others close.
    pub(super) fn on_connecting(&mut self, key: Key, conn_key: ConnKey) {
        let now = self.now;
        let Some(conn) = self.conns.get(conn_key) else { return };
        let addr = conn.addr;
        let ConnIo::Connecting(transport) = &mut conn.io else {
            return;
        };
        let connected = transport.connected();
        if let Ok(false) = connected {
            return;
        }
        let Some(slot) = self.uploads.get(key) else { return };
        if slot.conn == Some(conn_key) {
            slot.conn = None;
        }
        if let Some(racing) = slot.racing.as_mut() {
            racing.retain(|&k| k != conn_key);
        }
        if let Err(e) = connected {
            self.conns.close(self.poll.registry(), conn_key);
            let Some(slot) = self.uploads.get(key) else { return };
            let action = slot.life.handle_connect_failed(addr, e, now);
            return self.act(key, action);
        }
        // The winner: the other attempts close.
        let losers = slot.racing.take().map(|r| *r).unwrap_or_default();
        for loser in losers.into_iter().chain(slot.conn.take()) {
            self.conns.close(self.poll.registry(), loser);
        }
        let Some(slot) = self.uploads.get(key) else { return };
        slot.conn = Some(conn_key);
        if let Some(losers) = slot.life.handle_race_won(addr) {
            let delay = slot.life.attempt_delay().as_millis();
            let losers: Vec<String> = losers.iter().map(ToString::to_string).collect();
            log::info!(
                "connected to {addr} after {} did not answer in {delay} ms",
                losers.join(", ")
            );
        }
        let (host, port) = slot.connect_point();
        self.names.handle_connected(&host, port, addr, now);
        let Some(conn) = self.conns.get(conn_key) else { return };
        let ConnIo::Connecting(transport) = std::mem::replace(&mut conn.io, ConnIo::Empty) else {
            return;
        };
        let rtt = now.saturating_duration_since(conn.started).as_micros();
        conn.rtt_us = u32::try_from(rtt).unwrap_or(u32::MAX).max(1);
        conn.io = ConnIo::Ready(transport);
        let Some(slot) = self.uploads.get(key) else { return };
        let action = slot.life.handle_connected(now);
        self.act(key, action);
    }

    /// Layers TLS to the origin over the upload's connection (after a
    /// tunnel, when there is one).
    pub(super) fn start_tls(&mut self, key: Key) -> Result<(), UploadError> {
        let Some(slot) = self.uploads.get(key) else {
            return Ok(());
        };
        let (Some(conn_key), Some(target)) = (slot.conn, slot.target.as_ref()) else {
            return Ok(());
        };
        let host = target.host.clone();
        let config = if origin_of(slot).h2 { &self.tls_h2 } else { &self.tls };
        let config = Arc::clone(config);
        let Some(conn) = self.conns.get(conn_key) else {
            return Ok(());
        };
        let ConnIo::Ready(transport) = std::mem::replace(&mut conn.io, ConnIo::Empty) else {
            return Ok(());
        };
        match TlsTransport::new(transport, config, &host) {
            Ok(tls) => {
                conn.io = ConnIo::Ready(Box::new(tls));
                Ok(())
            }
            Err(e) => Err(UploadError::new(ErrorKind::Tls, format!("TLS setup for {host} failed: {e}")).with_source(e)),
        }
    }

    /// Opens a `CONNECT` tunnel through the proxy: writes the request,
    /// reads the answer, until the proxy decides.
    pub(super) fn tunnel(&mut self, key: Key) {
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        if slot.tunnel.is_none() {
            let (Some(target), Some(proxy)) = (
                slot.target.as_ref(),
                slot.transfer.as_ref().and_then(|p| p.proxy.as_ref()),
            ) else {
                return;
            };
            slot.tunnel = Some(Box::new(Tunnel::new(target, proxy)));
        }
        let (Some(conn_key), Some(tunnel)) = (slot.conn, slot.tunnel.as_mut()) else {
            return;
        };
        let Some(ConnIo::Ready(transport)) = self.conns.get(conn_key).map(|c| &mut c.io) else {
            return;
        };
        let mut status = Ok(TunnelStatus::Pending);
        while !tunnel.request().is_empty() {
            match transport.write_vectored(&[std::io::IoSlice::new(tunnel.request())]) {
                Ok(0) => status = Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => tunnel.handle_sent(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => status = Err(e),
            }
            if status.is_err() {
                break;
            }
        }
        let mut decided = Ok(TunnelStatus::Pending);
        while let (Ok(TunnelStatus::Pending), Ok(_)) = (&decided, &status) {
            // One byte at a time is not needed: the proxy says nothing more
            // until TLS starts, so whatever is read belongs to its answer.
            match transport.read(&mut self.read_buf) {
                Ok(0) => {
                    status = Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the proxy closed the connection",
                    ))
                }
                Ok(n) => {
                    slot.life.handle_activity(now, n as u64);
                    decided = tunnel.handle_received(&self.read_buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => status = Err(e),
            }
        }
        let proxy = tunnel_proxy_name(slot);
        match (status, decided) {
            (Err(e), _) => {
                let error = UploadError::new(ErrorKind::Network, format!("CONNECT through proxy {proxy} failed: {e}"));
                self.finish(key, Err(error.with_source(e)));
            }
            (_, Err(error)) => self.finish(key, Err(error)),
            (_, Ok(TunnelStatus::Open)) => {
                slot.tunnel = None;
                let action = slot.life.handle_tunnel_open(now);
                self.act(key, action);
            }
            (_, Ok(TunnelStatus::Pending)) => {}
        }
    }

    pub(super) fn on_handshaking(&mut self, key: Key) {
        let now = self.now;
        let Some(slot) = self.uploads.get(key) else { return };
        let (Some(conn_key), Some(target)) = (slot.conn, slot.target.as_ref()) else {
            return;
        };
        let Some(ConnIo::Ready(transport)) = self.conns.get(conn_key).map(|c| &mut c.io) else {
            return;
        };
        match transport.handshake() {
            Ok(_) => {
                let action = slot.life.handle_handshake_done(now);
                self.act(key, action);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.life.handle_activity(now, 0),
            Err(e) => {
                let error = tls_error(e, &target.host);
                self.finish(key, Err(error));
            }
        }
    }
}

fn tunnel_proxy_name(slot: &UploadSlot) -> String {
    let (host, port) = slot.connect_point();
    format!("{host}:{port}")
}

/// A TLS failure in words, with the rustls error as its source.
fn tls_error(e: io::Error, host: &str) -> UploadError {
    let message = match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => describe_tls(tls, host),
        None => format!("TLS handshake with {host} failed: {e}"),
    };
    UploadError::new(ErrorKind::Tls, message).with_source(e)
}

/// Where a lookup's answer goes: the loop, once. A resolver that drops its
/// `done` without calling it (or panics holding it) answers with an error,
/// so the uploads that need the name fail now, not at the connect timeout.
struct Answer {
    mailbox: Option<super::Mailbox>,
    host: Arc<str>,
    port: u16,
}

impl Answer {
    fn send(mut self, result: io::Result<Vec<SocketAddr>>) {
        self.deliver(result);
    }

    /// Sends `result` to the loop, the first time only.
    fn deliver(&mut self, result: io::Result<Vec<SocketAddr>>) {
        if let Some(mailbox) = self.mailbox.take() {
            let (host, port) = (Arc::clone(&self.host), self.port);
            let _ = mailbox.send(Command::Resolved { host, port, result });
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.deliver(Err(io::Error::other(if std::thread::panicking() {
            "the resolver panicked"
        } else {
            "the resolver dropped the lookup"
        })));
    }
}
