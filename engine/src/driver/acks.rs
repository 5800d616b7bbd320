//! Acknowledged progress on the loop: one netlink socket asks the kernel
//! how much of each connection's bytes the peer has not acknowledged
//! ([`crate::io::sendq`]); the exchange turns that into body bytes
//! ([`crate::proto::ack`]).

use super::conns::ConnIo;
use super::{deliver, Key, Loop};
use crate::events::Event;

impl Loop {
    /// Acknowledged progress: asks the kernel what the peer has of this
    /// upload's bytes, and reports it.
    pub(super) fn ask_acked(&mut self, key: Key) {
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
