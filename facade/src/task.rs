//! [`UploadTask`]: the handle `upload_file` returns, and the engine sink
//! that turns engine events into the documented callbacks.
//!
//! Guarantees: exactly one of `success`/`fail`, then `complete`, once each;
//! no progress after them; no lock held while user code runs, so a callback
//! may call `abort()` or start another upload. `abort()` before the outcome
//! is dispatched makes the outcome `fail("abort", 1000)`.
//!
//! App code cannot take the engine down: every callback runs under
//! `catch_unwind`. A panicking progress listener is logged and the upload
//! goes on; a panicking `success` or `fail` is logged and `complete` still
//! runs; the task settles with its outcome either way. If the engine drops
//! a task's sink without an outcome (its thread ended), the task fails
//! with "engine stopped" (1000) instead of hanging.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;

use uploadtask_engine::{Engine, ErrorKind, Event, EventSink, UploadError, UploadId};

use crate::dispatch::Dispatch;
use crate::options::{CompleteCallback, FailCallback, HeadersCallback, ProgressCallback, SuccessCallback};
use crate::response::{HeadersReceived, ProgressUpdate, UploadResponse};

/// Identifies a progress listener of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

impl ListenerId {
    /// The number behind the id (never 0), for hosts that pass ids across a
    /// language boundary.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with this number (see [`ListenerId::get`]).
    pub fn from_raw(raw: u64) -> ListenerId {
        ListenerId(raw)
    }
}

type Outcome = Result<UploadResponse, UploadError>;

/// A registered listener; `active` turns false when it is removed, and is
/// checked right before every call.
struct Listener<C: ?Sized> {
    id: ListenerId,
    active: AtomicBool,
    callback: Arc<C>,
}

impl<C: ?Sized> Listener<C> {
    fn new(id: ListenerId, callback: Arc<C>) -> Arc<Self> {
        Arc::new(Listener {
            id,
            active: AtomicBool::new(true),
            callback,
        })
    }

    fn call(&self, what: &str, id: Option<&UploadId>, run: impl FnOnce(&C)) {
        if self.active.load(Ordering::Acquire) {
            guarded(what, id, || run(&self.callback));
        }
    }
}

/// Removes the listener `id` (all with `None`) from `list`; a removed one
/// is never called again.
fn remove<C: ?Sized>(list: &mut Vec<Arc<Listener<C>>>, id: Option<ListenerId>) {
    list.retain(|listener| {
        let remove = id.is_none_or(|id| listener.id == id);
        if remove {
            listener.active.store(false, Ordering::Release);
        }
        !remove
    });
}

type ProgressListener = Listener<dyn Fn(&ProgressUpdate) + Send + Sync>;
type HeadersListener = Listener<dyn Fn(&HeadersReceived) + Send + Sync>;

/// Runs app code; a panic in it is logged with the upload's id and
/// swallowed.
fn guarded(what: &str, id: Option<&UploadId>, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        match id {
            Some(id) => log::error!("uploadtask: the {what} of {id} panicked; the upload and the engine go on"),
            None => log::error!("uploadtask: the {what} panicked; the upload and the engine go on"),
        }
    }
}

#[derive(Default)]
struct State {
    listeners: Vec<Arc<ProgressListener>>,
    head_listeners: Vec<Arc<HeadersListener>>,
    next_listener: u64,
    aborted: bool,
    /// The outcome has been dispatched: no more progress.
    finished: bool,
    /// Bytes of the last progress event dispatched.
    last_sent: u64,
    /// The last event, when it was dispatched while no listener existed;
    /// each listener added later gets it replayed on the dispatch path.
    unseen: Option<ProgressUpdate>,
    /// The head, when it was dispatched while no headers listener existed.
    unseen_head: Option<HeadersReceived>,
    result: Option<Outcome>,
    wakers: Vec<Waker>,
}

pub(crate) struct TaskInner {
    state: Mutex<State>,
    /// Held while listeners run, so that `off_progress_update` can wait for
    /// a dispatch in progress; `dispatcher` names the thread holding it.
    dispatching: Mutex<()>,
    dispatcher: Mutex<Option<ThreadId>>,
    settled: Condvar,
    engine: Option<Engine>,
    dispatch: Dispatch,
    id: OnceLock<UploadId>,
    /// Set by `abort()` for an upload run outside one engine upload (S3).
    cancel: OnceLock<Arc<std::sync::atomic::AtomicBool>>,
}

impl State {
    fn next_id(&mut self) -> ListenerId {
        self.next_listener += 1;
        ListenerId(self.next_listener - 1)
    }
}

impl TaskInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking user callback never runs under this lock, so poison
        // can only come from a bug here; the state is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks this thread as running listeners; released by `end_dispatch`.
    fn begin_dispatch(&self) -> MutexGuard<'_, ()> {
        let guard = self.dispatching.lock().unwrap_or_else(|p| p.into_inner());
        *self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current().id());
        guard
    }

    fn end_dispatch(&self) {
        *self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Waits until no other thread is running this task's listeners. From a
    /// listener itself (the dispatching thread) it returns at once.
    fn wait_for_other_dispatch(&self) {
        let me = std::thread::current().id();
        if *self.dispatcher.lock().unwrap_or_else(|p| p.into_inner()) == Some(me) {
            return;
        }
        drop(self.dispatching.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Runs `job` where events of this task are dispatched, in order with them.
    fn run_on_dispatch_path(&self, job: impl FnOnce() + Send + 'static) {
        match (&self.dispatch, &self.engine) {
            (Dispatch::EngineThread, Some(engine)) => engine.run_on_loop(job),
            (dispatch, _) => dispatch.run(Box::new(job)),
        }
    }

    fn settle(&self, outcome: Outcome) {
        let wakers = {
            let mut state = self.lock();
            state.result = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        self.settled.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The handle of one upload. Cheap to clone, `Send + Sync`; also a
/// `Future` of the outcome that works on any executor.
///
/// ```no_run
/// use uploadtask::UploadOptions;
///
/// let task = uploadtask::upload_file(UploadOptions::new(
///     "http://127.0.0.1:8080/upload",
///     "internal://mass/a.png",
///     "file",
/// ));
/// let id = task.on_progress_update(|p| println!("{}% ({} bytes)", p.progress, p.total_bytes_sent));
/// task.off_progress_update(Some(id)); // that listener; None removes all
/// match task.wait() {
///     Ok(response) => println!("status {}", response.status_code),
///     Err(error) => println!("fail({:?}, {})", error.message, error.code()),
/// }
/// ```
#[derive(Clone)]
pub struct UploadTask {
    inner: Arc<TaskInner>,
}

impl std::fmt::Debug for UploadTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadTask")
            .field("id", &self.inner.id.get())
            .finish_non_exhaustive()
    }
}

impl UploadTask {
    pub(crate) fn new(
        engine: Option<Engine>,
        dispatch: Dispatch,
        listeners: Vec<ProgressCallback>,
        head_listeners: Vec<HeadersCallback>,
    ) -> (UploadTask, Arc<TaskInner>) {
        let mut state = State::default();
        for callback in listeners {
            let id = state.next_id();
            state.listeners.push(Listener::new(id, callback));
        }
        for callback in head_listeners {
            let id = state.next_id();
            state.head_listeners.push(Listener::new(id, callback));
        }
        let inner = Arc::new(TaskInner {
            state: Mutex::new(state),
            dispatching: Mutex::new(()),
            dispatcher: Mutex::new(None),
            settled: Condvar::new(),
            engine,
            dispatch,
            id: OnceLock::new(),
            cancel: OnceLock::new(),
        });
        (
            UploadTask {
                inner: Arc::clone(&inner),
            },
            inner,
        )
    }

    pub(crate) fn set_id(&self, id: UploadId) {
        let _ = self.inner.id.set(id);
    }

    /// The flag `abort()` sets for an upload made of several requests.
    pub(crate) fn set_cancel(&self, flag: Arc<std::sync::atomic::AtomicBool>) {
        let _ = self.inner.cancel.set(flag);
    }

    /// The engine's id of this upload.
    pub fn id(&self) -> Option<UploadId> {
        self.inner.id.get().copied()
    }

    /// `abort()`: ends the upload with `fail("abort", 1000)` unless its
    /// outcome was already dispatched. No progress is reported after it.
    ///
    /// With [`Dispatch::Queue`] an abort before the host drains the outcome
    /// always wins. With engine-thread dispatch an upload that completes
    /// before this call (the caller was preempted for a whole round trip)
    /// keeps its outcome.
    pub fn abort(&self) {
        {
            let mut state = self.inner.lock();
            if state.finished {
                return;
            }
            state.aborted = true;
        }
        if let (Some(engine), Some(id)) = (&self.inner.engine, self.inner.id.get()) {
            engine.abort(*id);
        }
        if let Some(flag) = self.inner.cancel.get() {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// `onProgressUpdate(callback)`: returns the listener's id.
    ///
    /// A listener added after events were dispatched to nobody (the upload
    /// ran ahead of the caller) first gets the latest of them, on the
    /// dispatch path, unless a newer event or the outcome came first. To see
    /// every event for certain, register with
    /// [`UploadOptions::on_progress_update`](crate::UploadOptions::on_progress_update)
    /// or use [`Dispatch::Queue`].
    pub fn on_progress_update(&self, callback: impl Fn(&ProgressUpdate) + Send + Sync + 'static) -> ListenerId {
        let (listener, unseen) = {
            let mut state = self.inner.lock();
            let id = state.next_id();
            let listener: Arc<ProgressListener> = Listener::new(id, Arc::new(callback));
            state.listeners.push(Arc::clone(&listener));
            (listener, state.unseen)
        };
        let id = listener.id;
        if let Some(update) = unseen {
            let inner = Arc::clone(&self.inner);
            let replay = move || {
                let _dispatching = inner.begin_dispatch();
                let current = {
                    let state = inner.lock();
                    !state.finished && !state.aborted && state.last_sent == update.total_bytes_sent
                };
                if current {
                    listener.call(PROGRESS, inner.id.get(), |cb| cb(&update));
                }
                inner.end_dispatch();
            };
            self.inner.run_on_dispatch_path(replay);
        }
        id
    }

    /// `onHeadersReceived(callback)` (hapjs, wx): called once with the
    /// final response's status and headers when its head arrives, before
    /// its body is read and before `success`. Returns the listener's id.
    ///
    /// Order: the head usually arrives after the last progress event (the
    /// body went out first); an early response (say a 413 while the body is
    /// still going out) comes before it. A listener added after the head was
    /// dispatched to nobody gets it replayed, as progress listeners do.
    pub fn on_headers_received(&self, callback: impl Fn(&HeadersReceived) + Send + Sync + 'static) -> ListenerId {
        let (listener, unseen) = {
            let mut state = self.inner.lock();
            let id = state.next_id();
            let listener: Arc<HeadersListener> = Listener::new(id, Arc::new(callback));
            state.head_listeners.push(Arc::clone(&listener));
            (listener, state.unseen_head.clone())
        };
        let id = listener.id;
        if let Some(head) = unseen {
            let inner = Arc::clone(&self.inner);
            self.inner.run_on_dispatch_path(move || {
                let _dispatching = inner.begin_dispatch();
                let current = {
                    let state = inner.lock();
                    !state.finished && !state.aborted
                };
                if current {
                    listener.call(HEADERS, inner.id.get(), |cb| cb(&head));
                }
                inner.end_dispatch();
            });
        }
        id
    }

    /// `offHeadersReceived(callback)`: removes that listener, or all with
    /// `None`, with the same guarantee as [`UploadTask::off_progress_update`].
    pub fn off_headers_received(&self, id: Option<ListenerId>) {
        remove(&mut self.inner.lock().head_listeners, id);
        self.inner.wait_for_other_dispatch();
    }

    /// `offProgressUpdate(callback)`: removes that listener, or all with
    /// `None`. Once this returns, a removed listener is never called again
    /// (it waits for a dispatch in progress on another thread to end).
    pub fn off_progress_update(&self, id: Option<ListenerId>) {
        remove(&mut self.inner.lock().listeners, id);
        self.inner.wait_for_other_dispatch();
    }

    /// Blocks until the outcome has been dispatched; the callbacks have run
    /// when this returns. With [`Dispatch::Queue`] the outcome is dispatched
    /// when the host drains the queue, so do not wait on the host thread
    /// itself (drain it, or wait from another thread).
    ///
    /// Called on the engine thread (inside a callback with engine-thread
    /// dispatch), where it could never return, it fails at once with
    /// [`ErrorKind::WouldDeadlock`] (code 200) unless the outcome is known.
    pub fn wait(&self) -> Outcome {
        let mut state = self.inner.lock();
        let on_engine = self.inner.engine.as_ref().is_some_and(Engine::on_engine_thread);
        if on_engine && state.result.is_none() {
            return Err(UploadError::new(
                ErrorKind::WouldDeadlock,
                "wait() on the engine thread (inside a callback) would never return; use the callbacks",
            ));
        }
        loop {
            if let Some(result) = &state.result {
                return result.clone();
            }
            state = self.inner.settled.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The outcome, if known.
    pub fn try_result(&self) -> Option<Outcome> {
        self.inner.lock().result.clone()
    }
}

/// Awaiting a task does not own the upload: dropping the future (or every
/// handle) does not cancel it; call [`UploadTask::abort`] for that.
impl Future for UploadTask {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut state = self.inner.lock();
        if let Some(result) = &state.result {
            return Poll::Ready(result.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The documented callbacks of one upload.
pub(crate) struct Callbacks {
    pub success: Option<SuccessCallback>,
    pub fail: Option<FailCallback>,
    pub complete: Option<CompleteCallback>,
    pub request_head: Option<crate::options::RequestHeadCallback>,
    pub response_head: Option<crate::options::RequestHeadCallback>,
}

/// The engine's sink for one task: events become dispatched jobs.
pub(crate) struct TaskSink {
    pub inner: Arc<TaskInner>,
    pub callbacks: Option<Callbacks>,
    /// A resumable upload's link to the store.
    pub resume: Option<ResumeHook>,
    /// Its engine's count of uploads (for the least-loaded choice).
    pub load: Option<Arc<std::sync::atomic::AtomicUsize>>,
}

/// Keeps a resumable upload's resource in the store: stored when the
/// server names it, forgotten when it is gone or the upload ended with a
/// response; kept after a failure, to resume on the next run. With
/// `terminate`, an abort also deletes the resource on the server.
pub(crate) struct ResumeHook {
    pub store: Arc<dyn crate::resume::ResumeStore>,
    /// `None` when the file could not be read to fingerprint it.
    pub fingerprint: Option<String>,
    pub protocol: uploadtask_engine::resumable::Protocol,
    /// The resource as last known.
    pub url: Option<String>,
    /// The engine and the user's headers, for the `DELETE` on abort.
    pub terminate: Option<(uploadtask_engine::Engine, Vec<(String, String)>)>,
}

impl ResumeHook {
    fn changed(&mut self, change: uploadtask_engine::resumable::UrlChange) {
        use uploadtask_engine::resumable::UrlChange;
        match change {
            UrlChange::Learned(url) => {
                if let Some(fingerprint) = &self.fingerprint {
                    let stored = crate::resume::StoredUpload {
                        url: url.clone(),
                        expires: None,
                    };
                    self.store.put(fingerprint, &stored);
                }
                self.url = Some(url);
            }
            UrlChange::Expires(expires) => {
                if let (Some(fingerprint), Some(url)) = (&self.fingerprint, &self.url) {
                    let stored = crate::resume::StoredUpload {
                        url: url.clone(),
                        expires: Some(expires),
                    };
                    self.store.put(fingerprint, &stored);
                }
            }
            UrlChange::Forgotten => {
                if let Some(fingerprint) = &self.fingerprint {
                    self.store.remove(fingerprint);
                }
                self.url = None;
            }
        }
    }

    fn ended(&mut self, result: &Result<uploadtask_engine::Response, UploadError>) {
        let aborted = matches!(result, Err(e) if e.kind == ErrorKind::Aborted);
        let terminate = aborted && self.terminate.is_some();
        if result.is_ok() || terminate {
            if let Some(fingerprint) = &self.fingerprint {
                self.store.remove(fingerprint);
            }
        }
        let (Some((engine, headers)), Some(url), true) = (self.terminate.take(), self.url.take(), terminate) else {
            return;
        };
        let (method, headers) = uploadtask_engine::resumable::termination(self.protocol, &headers);
        let mut request = uploadtask_engine::UploadRequest::new(url);
        request.method = method.into();
        request.raw_body = Some(uploadtask_engine::SourceSpec::Memory(bytes::Bytes::new()));
        request.headers = headers;
        request.timeout = Some(std::time::Duration::from_secs(30));
        engine.submit(request, |_event: Event| {});
    }
}

impl EventSink for TaskSink {
    fn event(&mut self, event: Event) {
        match event {
            Event::Progress(progress) => {
                let inner = Arc::clone(&self.inner);
                self.inner
                    .dispatch
                    .run(Box::new(move || dispatch_progress(&inner, progress.into())));
            }
            Event::RequestHead(head) => {
                if let Some(trace) = self.callbacks.as_ref().and_then(|c| c.request_head.clone()) {
                    self.inner.dispatch.run(Box::new(move || {
                        guarded("request head callback", None, || trace(&head))
                    }));
                }
            }
            Event::ResponseHeadBytes(head) => {
                if let Some(trace) = self.callbacks.as_ref().and_then(|c| c.response_head.clone()) {
                    self.inner.dispatch.run(Box::new(move || {
                        guarded("response head callback", None, || trace(&head))
                    }));
                }
            }
            Event::Headers(status, headers) => {
                let inner = Arc::clone(&self.inner);
                let head = HeadersReceived::from_engine(status, &headers);
                self.inner
                    .dispatch
                    .run(Box::new(move || dispatch_headers(&inner, head)));
            }
            Event::Resumable(change) => {
                if let Some(resume) = self.resume.as_mut() {
                    resume.changed(change);
                }
            }
            Event::Done(result) => {
                if let Some(load) = self.load.take() {
                    load.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(resume) = self.resume.as_mut() {
                    resume.ended(&result);
                }
                let inner = Arc::clone(&self.inner);
                let callbacks = self.callbacks.take();
                // The outcome is decided when this job runs: an abort() that
                // came before it (on any thread) wins.
                self.inner.dispatch.run(Box::new(move || {
                    let outcome = {
                        let mut state = inner.lock();
                        state.finished = true;
                        match result {
                            _ if state.aborted => Err(UploadError::new(ErrorKind::Aborted, "abort")),
                            Ok(response) => Ok(UploadResponse::from_engine(response)),
                            Err(error) => Err(error),
                        }
                    };
                    if let Some(callbacks) = callbacks {
                        run_outcome_callbacks(callbacks, &outcome, inner.id.get());
                    }
                    inner.settle(outcome);
                }));
            }
            _ => {}
        }
    }
}

fn dispatch_progress(inner: &TaskInner, update: ProgressUpdate) {
    let _dispatching = inner.begin_dispatch();
    let listeners: Vec<Arc<ProgressListener>> = {
        let mut state = inner.lock();
        if state.finished || state.aborted {
            inner.end_dispatch();
            return;
        }
        state.last_sent = update.total_bytes_sent;
        if state.listeners.is_empty() {
            state.unseen = Some(update);
            inner.end_dispatch();
            return;
        }
        state.unseen = None;
        state.listeners.clone()
    };
    for listener in listeners {
        // Checks `active` right before the call: a listener removed by an
        // earlier one of this same event does not run.
        listener.call(PROGRESS, inner.id.get(), |cb| cb(&update));
    }
    inner.end_dispatch();
}

fn dispatch_headers(inner: &TaskInner, head: HeadersReceived) {
    let _dispatching = inner.begin_dispatch();
    let listeners: Vec<Arc<HeadersListener>> = {
        let mut state = inner.lock();
        if state.finished || state.aborted {
            inner.end_dispatch();
            return;
        }
        if state.head_listeners.is_empty() {
            state.unseen_head = Some(head);
            inner.end_dispatch();
            return;
        }
        state.head_listeners.clone()
    };
    for listener in listeners {
        listener.call(HEADERS, inner.id.get(), |cb| cb(&head));
    }
    inner.end_dispatch();
}

const PROGRESS: &str = "onProgressUpdate listener";
const HEADERS: &str = "onHeadersReceived listener";

fn run_outcome_callbacks(callbacks: Callbacks, outcome: &Outcome, id: Option<&UploadId>) {
    match outcome {
        Ok(response) => {
            if let Some(success) = callbacks.success {
                guarded("success callback", id, || success(response));
            }
        }
        Err(error) => {
            if let Some(fail) = callbacks.fail {
                guarded("fail callback", id, || fail(&error.message, error.code()));
            }
        }
    }
    if let Some(complete) = callbacks.complete {
        guarded("complete callback", id, complete);
    }
}

/// A sink dropped without an outcome (the engine thread ended, or the
/// engine dropped the upload) settles its task instead of leaving it
/// pending forever.
impl Drop for TaskSink {
    fn drop(&mut self) {
        if self.callbacks.is_none() {
            return;
        }
        let error = UploadError::new(ErrorKind::Aborted, "engine stopped before the upload ended");
        if std::thread::panicking() {
            // Never run app code while unwinding: hand it to another thread.
            let mut sink = TaskSink {
                inner: Arc::clone(&self.inner),
                callbacks: self.callbacks.take(),
                resume: None,
                load: self.load.take(),
            };
            let _ = std::thread::Builder::new().spawn(move || sink.event(Event::Done(Err(error))));
        } else {
            self.event(Event::Done(Err(error)));
        }
    }
}
