//! The C ABI of uploadtask (header: `facade/ffi/uploadtask.h`, made by
//! cbindgen; library: `libuploadtask_ffi.so`, `.a`).
//!
//! The documented API for app runtimes written in C or C++ (a quick-app
//! runtime bridging `@system.uploadtask` to its JS engine):
//!
//! - `ut_client_new` / `ut_client_free`: an engine, `internal://` roots,
//!   limits, extra root certificates.
//! - `ut_upload_file(client, options_json, callbacks, user_data)`: the
//!   documented options object as JSON (`url`, `filePath`, `name`, `header`,
//!   `formData`, `timeout`, and the extensions: `files`, `method`, `retry`,
//!   `resumable`…); returns a task at once; every outcome, argument errors
//!   included, arrives through the callbacks.
//! - `ut_task_abort`, `ut_task_on_progress_update` (a listener id),
//!   `ut_task_off_progress_update` (an id, or 0 for all), `ut_task_release`.
//! - Callbacks never run on the engine thread. The host runs them on its own
//!   thread, like libcurl's multi-socket API or c-ares: `ut_client_event_fd`
//!   becomes readable when callbacks are pending (add it to epoll, libuv…),
//!   and `ut_client_dispatch` runs them on the calling thread;
//!   `ut_client_dispatch_timeout` waits for them (simple hosts).
//!
//! Handles are numbers from a counter, never addresses and never reused: a
//! null, freed or made-up handle gets an error code (`UT_ERR_NULL`,
//! `UT_ERR_INVALID_HANDLE`), never undefined behaviour, even after many
//! more clients and tasks were made. No panic crosses the boundary
//! (`UT_ERR_PANIC`). No SIGPIPE reaches the host: the engine's threads keep
//! it blocked, so a write to a closed connection is only an error.
//! Dispatching from inside a callback returns `UT_ERR_REENTRANT` at once.
//! Strings passed to callbacks live for the duration of the call.
//! `unsafe` is confined to this crate: reading what C passes in, calling
//! C's function pointers, and carrying `user_data` to the host thread.

#![allow(non_camel_case_types)] // C names, as the header shows them

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use uploadtask::{
    Client, ClientConfig, Dispatch, EngineConfig, ErrorKind, EventQueue, ListenerId, Roots, UploadError, UploadOptions,
    UploadTask,
};

/// Success.
pub const UT_OK: c_int = 0;
/// A required pointer (a handle, a string) was null.
pub const UT_ERR_NULL: c_int = -1;
/// A handle that is not live: freed, released, or never made.
pub const UT_ERR_INVALID_HANDLE: c_int = -2;
/// A bug inside the library, caught before it crossed the boundary.
pub const UT_ERR_PANIC: c_int = -3;
/// An argument that cannot be used (not UTF-8, bad JSON in a config).
pub const UT_ERR_INVALID_ARGUMENT: c_int = -4;
/// The system refused a resource (a thread, a descriptor).
pub const UT_ERR_SYSTEM: c_int = -5;
/// `ut_client_dispatch` (or `_timeout`) was called from inside a callback
/// it is running: nothing ran; the outer call runs the rest once the
/// callback returns.
pub const UT_ERR_REENTRANT: c_int = -6;

/// An engine with its roots and its queue of callbacks. Opaque.
pub struct ut_client {
    _private: [u8; 0],
}

/// One upload. Opaque.
pub struct ut_task {
    _private: [u8; 0],
}

/// How to build a client; every field may be zero/NULL for the default.
#[repr(C)]
pub struct ut_client_config {
    /// JSON object naming `internal://` roots, `{"mass": "/data/app/mass"}`;
    /// NULL for none.
    pub roots_json: *const c_char,
    /// Accept plain paths (`/tmp/a.png`) as well as `internal://` ones.
    pub allow_plain_paths: bool,
    /// Most uploads in flight at once (0: the engine's 256).
    pub max_in_flight: u32,
    /// Connect timeout in milliseconds, the name lookup included (0: 30 s).
    pub connect_timeout_ms: u32,
    /// A PEM file of extra trusted root certificates; NULL for none.
    pub ca_file: *const c_char,
    /// Engines, one thread each (0 and 1: one); uploads go to the least
    /// loaded. For hosts on several cores.
    pub engines: u32,
}

/// `success(res)`: `status`, `data` (the body as UTF-8 text) and `headers`
/// as a JSON object; the strings live for the duration of the call.
pub type ut_success_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, status: u16, data: *const c_char, headers_json: *const c_char)>;
/// `fail(data, code)`: the message and the documented code (202, 204,
/// 300, 1000, 200).
pub type ut_fail_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, data: *const c_char, code: u32)>;
/// `complete()`: after `success` or `fail`, always.
pub type ut_complete_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;
/// A progress update: percent, bytes sent, bytes to send.
pub type ut_progress_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, progress: u32, total_bytes_sent: u64, total_bytes_expected: u64),
>;
/// The response head: status and headers as a JSON object.
pub type ut_headers_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, status: u16, headers_json: *const c_char)>;

/// The callbacks of one upload; any may be NULL. They run on the thread
/// that calls `ut_client_dispatch`, with the `user_data` given to
/// `ut_upload_file`, which must stay valid until `complete` ran.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ut_callbacks {
    /// `success(res)`.
    pub success: ut_success_fn,
    /// `fail(data, code)`.
    pub fail: ut_fail_fn,
    /// `complete()`.
    pub complete: ut_complete_fn,
    /// A first progress listener (as `onProgressUpdate` right after the call).
    pub progress: ut_progress_fn,
    /// The response head, once it arrives.
    pub headers_received: ut_headers_fn,
}

/// The host's pointer, carried to the thread that dispatches callbacks.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);

impl UserData {
    /// The pointer (a method, so closures capture the `Send` wrapper).
    fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the pointer is only handed back to the host's own callbacks, on
// the thread that calls `ut_client_dispatch`; the header documents that the
// host owns it and keeps it valid until `complete` ran.
#[allow(unsafe_code)]
unsafe impl Send for UserData {}
// SAFETY: as above; the library never dereferences it.
#[allow(unsafe_code)]
unsafe impl Sync for UserData {}

struct ClientEntry {
    client: Client,
    queue: EventQueue,
    wake: Arc<OwnedFd>,
    /// Tasks not yet released, and whether the client was freed: the
    /// engines stop when both say so.
    life: Mutex<ClientLife>,
}

#[derive(Default)]
struct ClientLife {
    tasks: usize,
    freed: bool,
    stopped: bool,
}

impl ClientEntry {
    fn life(&self) -> std::sync::MutexGuard<'_, ClientLife> {
        self.life.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the counts; once the client is freed and no task is left,
    /// its engines stop (uploads still in flight end as aborted, unseen).
    fn update(&self, change: impl FnOnce(&mut ClientLife)) {
        let stop = {
            let mut life = self.life();
            change(&mut life);
            let stop = life.freed && life.tasks == 0 && !life.stopped;
            life.stopped |= stop;
            stop
        };
        if stop {
            for engine in self.client.engines() {
                engine.shutdown();
            }
        }
    }
}

/// A task handle's value: the task and the client it came from.
struct TaskEntry {
    task: UploadTask,
    client: Arc<ClientEntry>,
}

/// Live handles. A handle is a number from a counter that never goes
/// back (never an address), so a freed handle never names a later client
/// or task: using it gives `UT_ERR_INVALID_HANDLE`, whatever was made since.
struct Registry<T> {
    live: Mutex<HashMap<usize, Arc<T>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl<T> Registry<T> {
    fn new() -> Self {
        Registry {
            live: Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    fn insert(&self, value: Arc<T>) -> usize {
        // 0 is NULL; a counter at its end would give 0 again: stop there.
        let handle = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .unwrap_or(0);
        if handle != 0 {
            self.lock().insert(handle, value);
        }
        handle
    }

    fn get(&self, handle: usize) -> Result<Arc<T>, c_int> {
        if handle == 0 {
            return Err(UT_ERR_NULL);
        }
        self.lock().get(&handle).map(Arc::clone).ok_or(UT_ERR_INVALID_HANDLE)
    }

    fn remove(&self, handle: usize) -> Result<Arc<T>, c_int> {
        if handle == 0 {
            return Err(UT_ERR_NULL);
        }
        self.lock().remove(&handle).ok_or(UT_ERR_INVALID_HANDLE)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Arc<T>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}

static CLIENTS: LazyLock<Registry<ClientEntry>> = LazyLock::new(Registry::new);
static TASKS: LazyLock<Registry<TaskEntry>> = LazyLock::new(Registry::new);

/// Runs `f`, turning a panic into `on_panic`.
fn guard<R>(on_panic: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        log::error!("uploadtask-ffi: a panic was caught at the C boundary");
        on_panic
    })
}

fn status(result: Result<(), c_int>) -> c_int {
    result.err().unwrap_or(UT_OK)
}

/// A C string as `&str`; NULL gives `None`.
fn text<'a>(pointer: *const c_char) -> Result<Option<&'a str>, c_int> {
    if pointer.is_null() {
        return Ok(None);
    }
    // SAFETY: the header requires every string argument to be NULL or a
    // NUL-terminated string valid for the duration of the call.
    #[allow(unsafe_code)]
    let c = unsafe { CStr::from_ptr(pointer) };
    c.to_str().map(Some).map_err(|_| UT_ERR_INVALID_ARGUMENT)
}

/// A string for C: interior NULs become U+FFFD (C strings end at NUL).
fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).unwrap_or_default()
}

/// A JSON object of headers in order (duplicates already joined).
fn headers_json(headers: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
        out.push(':');
        out.push_str(&serde_json::to_string(value).unwrap_or_default());
    }
    out.push('}');
    out
}

/// The library's version, a static string.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_version() -> *const c_char {
    c"uploadtask-ffi 0.1.0".as_ptr()
}

/// A client (an engine thread, roots, a queue of callbacks); NULL `config`
/// gives the defaults. Returns NULL if the configuration is unusable or
/// the engine cannot start (see the log). Free it with `ut_client_free`.
///
/// # Safety
///
/// `config` is NULL or points to a `ut_client_config` whose strings are
/// NULL or NUL-terminated, all valid for the duration of the call.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub unsafe extern "C" fn ut_client_new(config: *const ut_client_config) -> *mut ut_client {
    guard(std::ptr::null_mut(), || match new_client(config) {
        Ok(handle) => handle as *mut ut_client,
        Err(why) => {
            log::error!("uploadtask-ffi: ut_client_new: {why}");
            std::ptr::null_mut()
        }
    })
}

fn new_client(config: *const ut_client_config) -> Result<usize, String> {
    let mut roots = Roots::new();
    let mut engine = EngineConfig::default();
    let mut engines = 1;
    if !config.is_null() {
        // SAFETY: the header requires `config` to be NULL or to point to a
        // `ut_client_config` valid for the duration of the call.
        #[allow(unsafe_code)]
        let config = unsafe { &*config };
        if let Some(json) = text(config.roots_json).map_err(|_| "roots_json is not UTF-8")? {
            let map: HashMap<String, String> = serde_json::from_str(json).map_err(|e| format!("roots_json: {e}"))?;
            for (name, dir) in map {
                roots = roots.root(&name, dir);
            }
        }
        if config.allow_plain_paths {
            roots = roots.allow_plain_paths();
        }
        if config.max_in_flight > 0 {
            engine.max_in_flight = config.max_in_flight as usize;
        }
        if config.connect_timeout_ms > 0 {
            engine.connect_timeout = Duration::from_millis(u64::from(config.connect_timeout_ms));
        }
        if let Some(path) = text(config.ca_file).map_err(|_| "ca_file is not UTF-8")? {
            let pem = std::fs::read(path).map_err(|e| format!("ca_file {path}: {e}"))?;
            engine.add_root_pem(&pem).map_err(|e| format!("ca_file {path}: {e}"))?;
        }
        engines = config.engines as usize;
    }
    let wake = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )
    .map(Arc::new)
    .map_err(|e| format!("eventfd: {e}"))?;
    let notify = Arc::clone(&wake);
    let queue = EventQueue::with_notify(move || {
        // A full counter (2^64 - 2 wake-ups unread) only means "readable".
        let _ = rustix::io::write(&*notify, &1u64.to_ne_bytes());
    });
    let client = Client::new(ClientConfig {
        engine,
        roots,
        dispatch: Dispatch::Queue(queue.clone()),
        engines,
        ..ClientConfig::default()
    })
    .map_err(|e| format!("engine: {e}"))?;
    let entry = Arc::new(ClientEntry {
        client,
        queue,
        wake,
        life: Mutex::default(),
    });
    match CLIENTS.insert(Arc::clone(&entry)) {
        0 => {
            entry.update(|life| life.freed = true);
            Err("no handle left".into())
        }
        handle => Ok(handle),
    }
}

/// Frees a client. Callbacks not yet dispatched, and every later one, are
/// dropped without running; its engines stop (uploads still in flight end
/// unseen) once its tasks are released, at once when none is left; their
/// threads, descriptors and connections are then given back. The handle is
/// never valid again. Returns `UT_OK` or an error code.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_client_free(client: *mut ut_client) -> c_int {
    guard(UT_ERR_PANIC, || {
        status(CLIENTS.remove(client as usize).map(|entry| {
            entry.queue.close();
            entry.update(|life| life.freed = true);
        }))
    })
}

/// A descriptor that is readable while callbacks wait for
/// `ut_client_dispatch` (an `eventfd`; do not read or close it). Returns the
/// descriptor, or a negative error code.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_client_event_fd(client: *const ut_client) -> c_int {
    guard(UT_ERR_PANIC, || match CLIENTS.get(client as usize) {
        Ok(entry) => entry.wake.as_raw_fd(),
        Err(code) => code,
    })
}

/// Runs every pending callback on this thread. Returns how many ran, or a
/// negative error code: `UT_ERR_REENTRANT` at once when called from inside
/// a callback it runs (the outer call goes on once that callback returns).
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_client_dispatch(client: *mut ut_client) -> c_int {
    guard(UT_ERR_PANIC, || match CLIENTS.get(client as usize) {
        Ok(entry) => {
            // Reset the wake-up first: a callback queued after this makes
            // the descriptor readable again.
            let mut counter = [0u8; 8];
            let _ = rustix::io::read(&*entry.wake, &mut counter);
            match entry.queue.try_run_pending() {
                Ok(ran) => ran.min(c_int::MAX as usize) as c_int,
                Err(_) => UT_ERR_REENTRANT,
            }
        }
        Err(code) => code,
    })
}

/// Waits up to `timeout_ms` for a callback, then runs it and every other
/// pending one on this thread. Returns how many ran (0 after the timeout),
/// or a negative error code (`UT_ERR_REENTRANT` at once from inside a
/// callback, as for `ut_client_dispatch`).
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_client_dispatch_timeout(client: *mut ut_client, timeout_ms: u32) -> c_int {
    guard(UT_ERR_PANIC, || match CLIENTS.get(client as usize) {
        Ok(entry) => {
            let mut counter = [0u8; 8];
            let _ = rustix::io::read(&*entry.wake, &mut counter);
            match entry
                .queue
                .try_run_timeout(Duration::from_millis(u64::from(timeout_ms)))
            {
                Ok(ran) => ran.min(c_int::MAX as usize) as c_int,
                Err(_) => UT_ERR_REENTRANT,
            }
        }
        Err(code) => code,
    })
}

/// `uploadFile(options)`: starts an upload described by `options_json`
/// (the documented object as JSON) and returns its task at once. Every
/// outcome, a bad JSON included (`fail(…, 202)`), arrives through
/// `callbacks` on the dispatching thread. `callbacks` may be NULL;
/// `user_data` is passed back untouched. Returns NULL only for an invalid
/// client. Release the task with `ut_task_release` (that does not abort it).
///
/// # Safety
///
/// `options_json` is NULL or NUL-terminated; `callbacks` is NULL or points
/// to a `ut_callbacks`, both valid for the duration of the call; its
/// functions accept `user_data` on the dispatching thread until `complete`.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub unsafe extern "C" fn ut_upload_file(
    client: *mut ut_client,
    options_json: *const c_char,
    callbacks: *const ut_callbacks,
    user_data: *mut c_void,
) -> *mut ut_task {
    guard(std::ptr::null_mut(), || {
        let Ok(entry) = CLIENTS.get(client as usize) else {
            return std::ptr::null_mut();
        };
        let callbacks = if callbacks.is_null() {
            None
        } else {
            // SAFETY: the header requires `callbacks` to be NULL or to point
            // to a `ut_callbacks` valid for the duration of the call; it is
            // copied.
            #[allow(unsafe_code)]
            Some(unsafe { *callbacks })
        };
        let user = UserData(user_data);
        let parsed = match text(options_json) {
            Ok(Some(json)) => serde_json::from_str::<UploadOptions>(json)
                .map_err(|e| UploadError::new(ErrorKind::InvalidArgument, format!("options: {e}"))),
            Ok(None) => Err(UploadError::new(ErrorKind::InvalidArgument, "options: NULL")),
            Err(_) => Err(UploadError::new(ErrorKind::InvalidArgument, "options: not UTF-8")),
        };
        let (options, rejected) = match parsed {
            Ok(options) => (options, None),
            Err(error) => (UploadOptions::default(), Some(error)),
        };
        let options = with_callbacks(options, callbacks, user);
        let task = match rejected {
            None => entry.client.upload_file(options),
            Some(error) => entry.client.upload_file_rejected(options, error),
        };
        entry.update(|life| life.tasks += 1);
        let handle = TASKS.insert(Arc::new(TaskEntry {
            task,
            client: Arc::clone(&entry),
        }));
        if handle == 0 {
            entry.update(|life| life.tasks -= 1);
        }
        handle as *mut ut_task
    })
}

fn with_callbacks(mut options: UploadOptions, callbacks: Option<ut_callbacks>, user: UserData) -> UploadOptions {
    let Some(callbacks) = callbacks else { return options };
    if let Some(success) = callbacks.success {
        options = options.success(move |res| {
            let data = c_string(&res.data);
            let headers = c_string(&headers_json(&res.headers()));
            // SAFETY: a function pointer the host gave for this purpose,
            // called with its own `user_data` and strings valid for the call.
            #[allow(unsafe_code)]
            unsafe {
                success(user.get(), res.status_code, data.as_ptr(), headers.as_ptr())
            }
        });
    }
    if let Some(fail) = callbacks.fail {
        options = options.fail(move |data, code| {
            let data = c_string(data);
            // SAFETY: as for `success`.
            #[allow(unsafe_code)]
            unsafe {
                fail(user.get(), data.as_ptr(), code)
            }
        });
    }
    if let Some(complete) = callbacks.complete {
        options = options.complete(move || {
            // SAFETY: as for `success`.
            #[allow(unsafe_code)]
            unsafe {
                complete(user.get())
            }
        });
    }
    if let Some(progress) = callbacks.progress {
        options = options.on_progress_update(progress_listener(progress, user));
    }
    if let Some(headers) = callbacks.headers_received {
        options = options.on_headers_received(move |head| {
            let json = c_string(&headers_json(&head.headers()));
            // SAFETY: as for `success`.
            #[allow(unsafe_code)]
            unsafe {
                headers(user.get(), head.status_code, json.as_ptr())
            }
        });
    }
    options
}

fn progress_listener(
    progress: unsafe extern "C" fn(*mut c_void, u32, u64, u64),
    user: UserData,
) -> impl Fn(&uploadtask::ProgressUpdate) + Send + Sync + 'static {
    move |update| {
        // SAFETY: as for `success`.
        #[allow(unsafe_code)]
        unsafe {
            progress(
                user.get(),
                u32::from(update.progress),
                update.total_bytes_sent,
                update.total_bytes_expected_to_send,
            )
        }
    }
}

/// `abort()`: the upload ends with `fail("abort", 1000)` unless it already
/// ended. Returns `UT_OK` or an error code.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_task_abort(task: *mut ut_task) -> c_int {
    guard(UT_ERR_PANIC, || {
        status(TASKS.get(task as usize).map(|t| t.task.abort()))
    })
}

/// `onProgressUpdate(callback)`: returns the listener's id (never 0), or 0
/// for an invalid task or a NULL callback.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_task_on_progress_update(
    task: *mut ut_task,
    callback: ut_progress_fn,
    user_data: *mut c_void,
) -> u64 {
    guard(0, || {
        let (Ok(task), Some(callback)) = (TASKS.get(task as usize), callback) else {
            return 0;
        };
        task.task
            .on_progress_update(progress_listener(callback, UserData(user_data)))
            .get()
    })
}

/// `offProgressUpdate(callback)`: removes the listener `id`, or every
/// listener when `id` is 0. Returns `UT_OK` or an error code.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_task_off_progress_update(task: *mut ut_task, id: u64) -> c_int {
    guard(UT_ERR_PANIC, || {
        let id = (id != 0).then(|| ListenerId::from_raw(id));
        status(TASKS.get(task as usize).map(|t| t.task.off_progress_update(id)))
    })
}

/// Releases the task handle. The upload goes on and its callbacks still
/// run (while its client lives); abort it first to stop it. The handle is
/// never valid again. Returns `UT_OK` or an error code.
// SAFETY: an exported symbol with a unique `ut_` name.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn ut_task_release(task: *mut ut_task) -> c_int {
    guard(UT_ERR_PANIC, || {
        status(TASKS.remove(task as usize).map(|entry| {
            entry.client.update(|life| life.tasks -= 1);
        }))
    })
}
