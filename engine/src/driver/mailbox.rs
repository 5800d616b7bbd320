//! Commands to the loop and the mailbox that carries them: a channel, a
//! `mio::Waker`, and flags that spare a wake-up when one is pending.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use crate::error::UploadError;
use crate::events::EventSink;
use crate::events::UploadId;
use crate::request::UploadRequest;
use crate::stats::Stats;

/// Messages to the loop. `Submit` carries its request unboxed: boxing it
/// cost every upload an allocation (freed on another thread), while the
/// channel's larger blocks cost one allocation per 31 commands.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Submit {
        id: UploadId,
        at: Instant,
        request: UploadRequest,
        sink: Box<dyn EventSink>,
    },
    Abort(UploadId),
    Reject {
        error: UploadError,
        sink: Box<dyn EventSink>,
    },
    Run(Box<dyn FnOnce() + Send>),
    Stats(mpsc::Sender<Stats>),
    /// A name's lookup answered (for every upload that needs it).
    Resolved {
        host: Arc<str>,
        port: u16,
        result: std::io::Result<Vec<std::net::SocketAddr>>,
    },
    /// A resumable piece's checksum, computed off the loop.
    Checksum {
        id: UploadId,
        piece: (u64, u64),
        result: Result<String, String>,
    },
    Shutdown,
}

/// The way into the loop: a channel and a waker. A wake is only sent when
/// none is pending, so a burst of commands costs one `write(2)`; a command
/// sent from the loop's own thread (a callback starting an upload) needs
/// none, because the loop drains the channel before it blocks again.
#[derive(Clone)]
pub(crate) struct Mailbox {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    wake_pending: Arc<AtomicBool>,
    local_pending: Arc<AtomicBool>,
    loop_thread: Arc<std::sync::OnceLock<std::thread::ThreadId>>,
}

impl Mailbox {
    pub(crate) fn new(commands: mpsc::Sender<Command>, waker: Arc<mio::Waker>) -> Self {
        Mailbox {
            commands,
            waker,
            wake_pending: Arc::new(AtomicBool::new(false)),
            local_pending: Arc::new(AtomicBool::new(false)),
            loop_thread: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Hands the command back when the loop is gone (as the channel does).
    #[allow(clippy::result_large_err)]
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        self.commands.send(command).map_err(|e| e.0)?;
        if self.loop_thread.get() == Some(&std::thread::current().id()) {
            self.local_pending.store(true, Ordering::Release);
        } else if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A failed wake means the loop is gone; the command is then dropped.
            let _ = self.waker.wake();
        }
        Ok(())
    }

    /// True on the loop's own thread.
    pub(crate) fn on_loop_thread(&self) -> bool {
        self.loop_thread.get() == Some(&std::thread::current().id())
    }

    /// Called once by the loop, on its thread.
    pub(crate) fn set_loop_thread(&self) {
        let _ = self.loop_thread.set(std::thread::current().id());
    }

    /// True when the loop's own thread sent commands not yet drained.
    pub(crate) fn has_local(&self) -> bool {
        self.local_pending.load(Ordering::Acquire)
    }

    /// Called by the loop before it drains the channel.
    pub(crate) fn clear_wake(&self) {
        self.wake_pending.store(false, Ordering::Release);
        self.local_pending.store(false, Ordering::Release);
    }
}
