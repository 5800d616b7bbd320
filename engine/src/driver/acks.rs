//! Acknowledged progress on the loop: one netlink socket asks the kernel
//! how much of each connection's bytes the peer has not acknowledged
//! ([`crate::sendq`]); the exchange turns that into body bytes
//! ([`crate::ack`]).

use std::time::Instant;

use super::conns::ConnIo;
use super::{deliver, Key, Loop};
use crate::Event;

/// Asks the kernel what peers acknowledged ([`crate::sendq`]); opened on
/// first use. Where that is impossible, acknowledged progress stays at
/// zero until the response (late, never ahead), and that is logged once.
#[derive(Debug, Default)]
pub(super) struct Acks {
    queues: Option<crate::sendq::SendQueues>,
    unavailable: bool,
}

impl Acks {
    pub(super) fn ask(
        &mut self,
        transport: &mut dyn crate::transport::Transport,
        exchange: &mut crate::exchange::Exchange,
        now: Instant,
    ) {
        if self.unavailable {
            return;
        }
        let Some((local, peer)) = transport.tcp_addrs() else {
            return;
        };
        if self.queues.is_none() {
            match crate::sendq::SendQueues::open() {
                Ok(queues) => self.queues = Some(queues),
                Err(e) => {
                    self.unavailable = true;
                    log::warn!("uploadtask: acknowledged progress is not available here ({e})");
                    return;
                }
            }
        }
        let Some(queues) = self.queues.as_mut() else { return };
        match queues.unacked(local, peer) {
            Ok(unacked) => exchange.handle_unacked(transport.wire_written(), unacked, now),
            Err(e) => log::debug!("uploadtask: no acknowledged count for {local} -> {peer}: {e}"),
        }
    }
}

impl Loop {
    /// Acknowledged progress: asks the kernel what the peer has of this
    /// upload's bytes, and reports it.
    pub(super) fn poll_acked(&mut self, key: Key) {
        let Some(slot) = self.uploads.get(key) else { return };
        let (Some(conn_key), Some(exchange)) = (slot.conn, slot.exchange.as_mut()) else {
            return;
        };
        let Some(ConnIo::Ready(transport)) = self.conns.get(conn_key).map(|c| &mut c.io) else {
            return;
        };
        self.acks.ask(transport.as_mut(), exchange, self.now);
        while let Some(progress) = exchange.poll_progress(self.now) {
            deliver(&mut *slot.sink, slot.id, Event::Progress(progress));
        }
    }
}
