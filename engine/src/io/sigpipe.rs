//! A write to a connection its peer reset raises SIGPIPE, and its default
//! action ends the whole process. Rust programs ignore it; a C host or a
//! JS runtime that embeds the engine may not, and must not have to. The
//! engine thread, the only one that writes to sockets (`writev`,
//! `sendfile` and TLS records alike), keeps SIGPIPE blocked for its whole
//! life: such a signal is directed at the thread that wrote, so it stays
//! pending there, never reaches the host, and is dropped when the thread
//! ends; the write itself fails with `EPIPE`, an error like any other.
//! The process's disposition of SIGPIPE is left alone.

/// Blocks SIGPIPE for the calling thread (best effort: a failure is logged).
pub(crate) fn block_on_this_thread() {
    #[cfg(unix)]
    {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGPIPE);
        if let Err(e) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
            log::warn!("uploadtask: cannot block SIGPIPE on the engine thread: {e}");
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

    #[test]
    fn sigpipe_is_blocked_on_the_calling_thread_only() {
        let blocked = |_: ()| {
            let mut old = SigSet::empty();
            pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut old)).unwrap();
            old.contains(Signal::SIGPIPE)
        };
        let engine_thread = std::thread::spawn(move || {
            super::block_on_this_thread();
            blocked(())
        });
        assert!(engine_thread.join().unwrap());
        let other = std::thread::spawn(move || blocked(()));
        assert!(!other.join().unwrap(), "other threads keep their mask");
    }
}
