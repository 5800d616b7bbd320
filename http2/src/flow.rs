//! Flow control (RFC 9113 §5.2, §6.9): the windows we may send into, and
//! our own receive windows with the rule for giving credit back.
//!
//! Credit is given back in large steps: once half of a receive window was
//! used, one WINDOW_UPDATE restores all of it (never a trickle of tiny
//! updates, never a stall waiting for one).
//!
//! ```
//! use uploadtask_http2::flow::{ReceiveWindow, SendWindow};
//!
//! let mut send = SendWindow::new(65_535);
//! send.consume(65_535);
//! assert_eq!(send.available(), 0);
//! send.increase(1 << 20).unwrap();
//! assert_eq!(send.available(), 1 << 20);
//!
//! let mut receive = ReceiveWindow::new(1 << 20);
//! receive.handle_received(300_000).unwrap();
//! assert_eq!(receive.poll_update(), None);
//! receive.handle_received(300_000).unwrap();
//! assert_eq!(receive.poll_update(), Some(600_000));
//! ```

use crate::frame::MAX_WINDOW;
use crate::ErrorCode;

/// A window we send into: the peer's credit for us. It can go below zero
/// when the peer lowers `SETTINGS_INITIAL_WINDOW_SIZE` (§6.9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow(i64);

impl SendWindow {
    /// A window of `size` bytes.
    pub fn new(size: u32) -> Self {
        SendWindow(i64::from(size))
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u32 {
        self.0.clamp(0, i64::from(MAX_WINDOW)) as u32
    }

    /// `n` bytes were sent (at most [`SendWindow::available`]).
    pub fn consume(&mut self, n: u32) {
        self.0 -= i64::from(n);
    }

    /// A WINDOW_UPDATE: beyond 2^31 − 1 is a `FLOW_CONTROL_ERROR`.
    pub fn increase(&mut self, increment: u32) -> Result<(), ErrorCode> {
        self.adjust(i64::from(increment))
    }

    /// A change of `SETTINGS_INITIAL_WINDOW_SIZE` by `delta`.
    pub fn adjust(&mut self, delta: i64) -> Result<(), ErrorCode> {
        let next = self.0 + delta;
        if next > i64::from(MAX_WINDOW) {
            return Err(ErrorCode::FLOW_CONTROL_ERROR);
        }
        self.0 = next;
        Ok(())
    }
}

/// A window the peer sends into: our credit for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveWindow {
    /// The size we keep it at.
    target: u32,
    /// Credit the peer has left.
    left: u32,
}

impl ReceiveWindow {
    /// A window the peer believes is `target` bytes.
    pub fn new(target: u32) -> Self {
        ReceiveWindow { target, left: target }
    }

    /// `n` bytes arrived (a DATA frame's whole payload): more than the
    /// window is a `FLOW_CONTROL_ERROR`.
    pub fn handle_received(&mut self, n: u32) -> Result<(), ErrorCode> {
        self.left = self.left.checked_sub(n).ok_or(ErrorCode::FLOW_CONTROL_ERROR)?;
        Ok(())
    }

    /// The increment to send, once half the window was used.
    pub fn poll_update(&mut self) -> Option<u32> {
        let used = self.target - self.left;
        if used == 0 || used < self.target / 2 {
            return None;
        }
        self.left = self.target;
        Some(used)
    }

    /// Raises the target (our SETTINGS or the connection's first update):
    /// the increment to announce.
    pub fn grow_to(&mut self, target: u32) -> Option<u32> {
        let more = target.checked_sub(self.target).filter(|&more| more > 0)?;
        self.target = target;
        self.left += more;
        Some(more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_window_goes_below_zero_when_settings_shrink_it_and_refuses_overflow() {
        let mut window = SendWindow::new(65_535);
        window.consume(60_000);
        window.adjust(-65_535 + 1_000).unwrap();
        assert_eq!(window.available(), 0);
        window.increase(59_000).unwrap();
        assert_eq!(window.available(), 0);
        window.increase(1).unwrap();
        assert_eq!(window.available(), 1);
        assert_eq!(window.increase(MAX_WINDOW), Err(ErrorCode::FLOW_CONTROL_ERROR));
        assert_eq!(
            SendWindow::new(MAX_WINDOW).increase(1),
            Err(ErrorCode::FLOW_CONTROL_ERROR)
        );
    }

    #[test]
    fn a_receive_window_gives_credit_back_in_large_steps_and_refuses_more_than_it_gave() {
        let mut window = ReceiveWindow::new(100);
        window.handle_received(49).unwrap();
        assert_eq!(window.poll_update(), None);
        window.handle_received(1).unwrap();
        assert_eq!(window.poll_update(), Some(50));
        assert_eq!(window.poll_update(), None);
        window.handle_received(100).unwrap();
        assert_eq!(window.handle_received(1), Err(ErrorCode::FLOW_CONTROL_ERROR));
        assert_eq!(window.grow_to(200), Some(100));
        assert_eq!(window.grow_to(150), None);
    }
}
