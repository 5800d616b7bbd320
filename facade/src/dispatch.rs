//! Where callbacks run: on the engine thread as events happen, or queued
//! for the host's own thread ([`EventQueue`]), as a JS runtime needs.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// Where callbacks run.
///
/// A JS runtime takes them on its own thread with [`Dispatch::Queue`]:
///
/// ```no_run
/// use std::time::Duration;
/// use uploadtask::{Client, ClientConfig, Dispatch, EventQueue, Roots, UploadOptions};
///
/// let queue = EventQueue::new();
/// let client = Client::new(ClientConfig {
///     roots: Roots::new().root("mass", "/data/app/mass"),
///     dispatch: Dispatch::Queue(queue.clone()),
///     ..ClientConfig::default()
/// })?;
/// let task = client.upload_file(
///     UploadOptions::new("http://127.0.0.1:8080/up", "internal://mass/a.png", "file")
///         .complete(|| println!("runs on the host thread, inside run_timeout")),
/// );
/// // The host's event loop: run what is queued, here until the task ends.
/// while task.try_result().is_none() {
///     queue.run_timeout(Duration::from_millis(100));
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub enum Dispatch {
    /// On the engine thread, as events happen (the default). Keep callbacks
    /// quick: the loop waits while they run.
    #[default]
    EngineThread,
    /// Queued; the host runs them on its own thread with
    /// [`EventQueue::run_pending`] (what a JS runtime needs).
    Queue(EventQueue),
}

impl Dispatch {
    pub(crate) fn run(&self, job: Job) {
        match self {
            Dispatch::EngineThread => job(),
            Dispatch::Queue(queue) => {
                // The receiver lives as long as the queue handle; if the host
                // dropped every handle, nobody can observe the job anyway.
                let _ = queue.tx.send(job);
                if queue.closed.load(Ordering::Acquire) {
                    // Closed while this job was on its way: it never runs.
                    queue.drop_pending();
                    return;
                }
                if let Some(notify) = &queue.notify {
                    notify();
                }
            }
        }
    }
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dispatch::Queue(_) => "Dispatch::Queue",
            Dispatch::EngineThread => "Dispatch::EngineThread",
        })
    }
}

/// Callbacks waiting for the host thread. Clone it freely; every clone is
/// the same queue. See [`Dispatch::Queue`] for an example.
///
/// Its length is bounded by what the engine reports: per upload at most one
/// progress event per percent or per 100 ms, one head, one outcome; a host
/// that drains it less often than that holds those jobs in memory.
///
/// Callbacks run by [`EventQueue::run_pending`] must not run the queue
/// again on the same thread: such a nested call runs nothing (see
/// [`EventQueue::try_run_pending`]); the outer call goes on with what is
/// queued once the callback returns.
#[derive(Clone)]
pub struct EventQueue {
    tx: mpsc::Sender<Job>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    notify: Option<Arc<dyn Fn() + Send + Sync>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

/// [`EventQueue::try_run_pending`] was called from inside a callback that
/// the queue is running on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReentrantDispatch;

impl std::fmt::Display for ReentrantDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("callbacks are already being run on this thread (called from inside a callback)")
    }
}

impl std::error::Error for ReentrantDispatch {}

thread_local! {
    /// True while this thread runs a queued callback.
    static RUNNING_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as running a callback until dropped.
struct Running;

impl Running {
    fn enter() -> Result<Running, ReentrantDispatch> {
        if RUNNING_CALLBACK.with(|running| running.replace(true)) {
            return Err(ReentrantDispatch);
        }
        Ok(Running)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING_CALLBACK.with(|running| running.set(false));
    }
}

impl Default for EventQueue {
    fn default() -> Self {
        EventQueue::new()
    }
}

impl EventQueue {
    /// An empty queue.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        EventQueue {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            notify: None,
            closed: Arc::default(),
        }
    }

    /// An empty queue that calls `notify` after each callback it takes (on
    /// the thread that queued it): a host wakes its own event loop with it
    /// (an `eventfd`, a pipe, a libuv async handle), then runs
    /// [`EventQueue::run_pending`] on its thread. Keep `notify` quick.
    pub fn with_notify(notify: impl Fn() + Send + Sync + 'static) -> Self {
        EventQueue {
            notify: Some(Arc::new(notify)),
            ..EventQueue::new()
        }
    }

    /// Runs every queued callback on this thread; returns how many ran
    /// (0 when called from inside one of them: see
    /// [`EventQueue::try_run_pending`]).
    pub fn run_pending(&self) -> usize {
        self.try_run_pending().unwrap_or(0)
    }

    /// Runs every queued callback on this thread and returns how many ran;
    /// from inside a callback run by a queue on this thread, runs nothing and
    /// says so (the callbacks of one upload keep their order: the outer
    /// call runs the rest once the callback returns).
    pub fn try_run_pending(&self) -> Result<usize, ReentrantDispatch> {
        let _running = Running::enter()?;
        let mut ran = 0;
        while let Some(job) = self.next(None) {
            job();
            ran += 1;
        }
        Ok(ran)
    }

    /// Waits up to `timeout` for a callback, then runs it and all others
    /// queued; returns how many ran (0 from inside a callback).
    pub fn run_timeout(&self, timeout: Duration) -> usize {
        self.try_run_timeout(timeout).unwrap_or(0)
    }

    /// As [`EventQueue::run_timeout`], saying when it was called from inside
    /// a callback (then it neither waits nor runs anything).
    pub fn try_run_timeout(&self, timeout: Duration) -> Result<usize, ReentrantDispatch> {
        let running = Running::enter()?;
        match self.next(Some(timeout)) {
            Some(job) => {
                job();
                drop(running);
                Ok(1 + self.try_run_pending()?)
            }
            None => Ok(0),
        }
    }

    /// Stops the queue for good: callbacks queued and every later one are
    /// dropped without running. A host that goes away calls it, so that
    /// the queued callbacks (and the uploads they hold) are freed.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.drop_pending();
    }

    /// True once [`EventQueue::close`] was called on any clone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Drops what is queued, outside the lock (a job's drop may release a
    /// task that holds this queue).
    fn drop_pending(&self) {
        let jobs: Vec<Job> = {
            let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.try_iter().collect()
        };
        drop(jobs);
    }

    fn next(&self, wait: Option<Duration>) -> Option<Job> {
        // The lock is released before the job runs: a job may use the queue.
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        match wait {
            None => rx.try_recv().ok(),
            Some(timeout) => rx.recv_timeout(timeout).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_cannot_run_the_queue_again_and_the_outer_run_goes_on() {
        let queue = EventQueue::new();
        let dispatch = Dispatch::Queue(queue.clone());
        let seen = Arc::new(Mutex::new(Vec::new()));
        for n in 0..3 {
            let (inner, seen) = (queue.clone(), Arc::clone(&seen));
            dispatch.run(Box::new(move || {
                let nested = inner.try_run_pending();
                seen.lock().unwrap().push((n, nested));
                assert_eq!(inner.run_timeout(Duration::from_secs(5)), 0, "no wait either");
            }));
        }
        assert_eq!(queue.try_run_pending(), Ok(3));
        let refused = Err(ReentrantDispatch);
        assert_eq!(*seen.lock().unwrap(), [(0, refused), (1, refused), (2, refused)]);
        assert_eq!(queue.try_run_pending(), Ok(0), "usable again after the callbacks");
    }

    #[test]
    fn a_closed_queue_drops_what_it_holds_and_every_later_callback() {
        let queue = EventQueue::new();
        let dispatch = Dispatch::Queue(queue.clone());
        let held = Arc::new(());
        for _ in 0..2 {
            let held = Arc::clone(&held);
            dispatch.run(Box::new(move || drop(held)));
        }
        assert_eq!(Arc::strong_count(&held), 3);
        queue.close();
        assert_eq!(Arc::strong_count(&held), 1, "queued callbacks dropped");
        let later = Arc::clone(&held);
        dispatch.run(Box::new(move || drop(later)));
        assert_eq!(Arc::strong_count(&held), 1, "a later callback is dropped at once");
        assert!(queue.is_closed());
        assert_eq!(queue.run_pending(), 0);
    }
}
