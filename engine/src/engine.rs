//! The [`Engine`] handle: submitting, aborting, stats, shutdown; the loop
//! runs on a thread of its own.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::config::EngineConfig;
use crate::driver::{self, Command, Mailbox};
use crate::error::{ErrorKind, UploadError};
use crate::events::Event;
use crate::events::EventSink;
use crate::events::UploadId;
use crate::io::resolver::ThreadPoolResolver;
use crate::proto::proxy;
use crate::request::UploadRequest;
use crate::stats::Stats;

struct Shared {
    mailbox: Mailbox,
    next_id: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Uploads submitted and not yet ended (in the channel, queued or in
    /// flight); the loop gives each back when it ends.
    admitted: Arc<AtomicUsize>,
    /// Most uploads `admitted` may count: in flight plus queued.
    admit_limit: usize,
}

impl Shared {
    #[allow(clippy::result_large_err)]
    fn send(&self, command: Command) -> Result<(), Command> {
        self.mailbox.send(command)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.send(Command::Shutdown);
    }
}

/// A handle to one engine (one loop thread). Cheap to clone, `Send + Sync`.
/// The loop stops when the last handle is dropped or on [`Engine::shutdown`].
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts an engine thread with `config` (checked with
    /// [`EngineConfig::validate`]; an invalid one is `InvalidInput`).
    pub fn new(config: EngineConfig) -> std::io::Result<Engine> {
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if config.raise_fd_limit {
            raise_fd_limit();
        }
        let tls = config
            .tls_config()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let resolver = match &config.resolver {
            Some(resolver) => Arc::clone(resolver),
            None => Arc::new(ThreadPoolResolver::new(2)?),
        };
        let (commands, inbox) = mpsc::channel();
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), driver::WAKER)?);
        let mailbox = Mailbox::new(commands, waker);
        let admitted = Arc::new(AtomicUsize::new(0));
        let admit_limit = config.max_in_flight.saturating_add(config.max_queued);
        let proxies = match &config.proxies {
            Some(proxies) => proxies.clone(),
            None => proxy::Proxies::from_env().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        };
        let looper = driver::Loop::new(
            poll,
            config,
            tls,
            resolver,
            (inbox, mailbox.clone()),
            Arc::clone(&admitted),
            Arc::new(proxies),
        );
        let thread = std::thread::Builder::new()
            .name("uploadtask-engine".into())
            .spawn(move || looper.run())?;
        Ok(Engine {
            shared: Arc::new(Shared {
                mailbox,
                next_id: AtomicU64::new(1),
                thread: Mutex::new(Some(thread)),
                admitted,
                admit_limit,
            }),
        })
    }

    /// Submits an upload; returns at once, before any I/O. Its events go to
    /// `sink` on the engine thread, never inside this call. When the queue
    /// is full (see [`EngineConfig::max_queued`]) the upload fails with
    /// code 200; [`Engine::try_submit`] hands it back instead.
    pub fn submit(&self, request: UploadRequest, sink: impl EventSink) -> UploadId {
        match self.try_submit(request, sink) {
            Ok(id) => id,
            Err(refused) => {
                let error = UploadError::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "upload queue is full ({} uploads in flight or waiting)",
                        self.shared.admit_limit
                    ),
                );
                self.reject(error, refused.sink)
            }
        }
    }

    /// Submits an upload unless the engine already holds
    /// `max_in_flight + max_queued` of them; then hands it back untouched,
    /// so the caller can wait and try again (back-pressure).
    pub fn try_submit<S: EventSink>(&self, request: UploadRequest, sink: S) -> Result<UploadId, Box<Refused<S>>> {
        let admitted = &self.shared.admitted;
        let mut current = admitted.load(Ordering::Acquire);
        loop {
            if current >= self.shared.admit_limit {
                return Err(Box::new(Refused { request, sink }));
            }
            match admitted.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let id = UploadId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let command = Command::Submit {
            id,
            at: Instant::now(),
            request,
            sink: Box::new(sink),
        };
        if let Err(Command::Submit { sink, .. }) = self.shared.send(command) {
            admitted.fetch_sub(1, Ordering::AcqRel);
            report_elsewhere(sink, UploadError::new(ErrorKind::Aborted, "engine shut down"));
        }
        Ok(id)
    }

    /// Fails an upload that cannot be submitted (a bad argument found by the
    /// caller) through the same path as every outcome: `sink` gets
    /// `Done(Err(error))` on the engine thread, never inside this call.
    pub fn reject(&self, error: UploadError, sink: impl EventSink) -> UploadId {
        let id = UploadId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        if let Err(Command::Reject { error, sink }) = self.shared.send(Command::Reject {
            error,
            sink: Box::new(sink),
        }) {
            report_elsewhere(sink, error);
        }
        id
    }

    /// True when called on this engine's loop thread (inside an event sink
    /// or a job), where blocking on the engine would never return.
    pub fn on_engine_thread(&self) -> bool {
        self.shared.mailbox.on_loop_thread()
    }

    /// What the engine holds now: uploads, connections, timers. Taken on
    /// the loop between two turns, so the counts agree with each other.
    /// `None` when the engine has stopped, or when called on the engine
    /// thread itself (it cannot wait for its own loop).
    pub fn stats(&self) -> Option<Stats> {
        if self.shared.mailbox.on_loop_thread() {
            return None;
        }
        let (tx, rx) = mpsc::channel();
        self.shared.send(Command::Stats(tx)).ok()?;
        rx.recv().ok()
    }

    /// Runs `job` on the engine thread, after every command sent before it
    /// (the facade replays a progress event to a late listener this way, in
    /// order with the upload's other events). Dropped if the engine stopped.
    pub fn run_on_loop(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.shared.send(Command::Run(Box::new(job)));
    }

    /// Aborts an upload: it fails with [`ErrorKind::Aborted`] unless it has
    /// already ended. Unknown or finished ids are ignored.
    pub fn abort(&self, id: UploadId) {
        let _ = self.shared.send(Command::Abort(id));
    }

    /// Stops the loop: uploads in flight fail as aborted. Waits for the
    /// thread unless called from it.
    pub fn shutdown(&self) {
        let _ = self.shared.send(Command::Shutdown);
        let handle = self.shared.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// An upload [`Engine::try_submit`] did not take: the queue is full.
pub struct Refused<S> {
    /// The request, untouched.
    pub request: UploadRequest,
    /// The sink, never called.
    pub sink: S,
}

impl<S> fmt::Debug for Refused<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Refused(upload queue is full)")
    }
}

/// Reports an outcome when the loop cannot: on a short-lived thread, so
/// the sink never runs inside the caller's call.
fn report_elsewhere(mut sink: Box<dyn EventSink>, error: UploadError) {
    let spawned = std::thread::Builder::new()
        .name("uploadtask-report".into())
        .spawn(move || driver::deliver(&mut *sink, UploadId(0), Event::Done(Err(error))));
    if let Err(e) = spawned {
        log::error!("uploadtask: cannot start a thread to report a failure: {e}");
    }
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit (best effort).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
