//! [`Client`]: an engine, the `internal://` roots, and where callbacks run.
//! The global one behind [`crate::upload_file`] starts lazily.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use uploadtask_engine::{Engine, EngineConfig, ErrorKind, FileInput, SourceSpec, UploadError, UploadRequest};

use uploadtask_engine::resumable::{Protocol, Resumable};

use crate::dispatch::Dispatch;
use crate::options::{FileEntry, HttpOption, ResumableProtocol, RetryOptions, UploadOptions};
use crate::paths::Roots;
use crate::resume::ResumeStore;
use crate::task::{Callbacks, ResumeHook, TaskSink, UploadTask};

/// Starts `count` engines (at least one, a thread each) that share the
/// work of one `config`: one TLS configuration (one session cache, one set
/// of verified chains), and `max_in_flight` and `max_queued` shared out
/// among them. [`Client`] runs on these; so does a load generator that
/// submits to the engines itself.
///
/// ```no_run
/// use uploadtask::{start_engines, EngineConfig};
///
/// let config = EngineConfig { max_in_flight: 1000, ..EngineConfig::default() };
/// let engines = start_engines(config, 4)?; // 250 in flight each
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn start_engines(mut config: EngineConfig, count: usize) -> io::Result<Vec<Engine>> {
    let count = count.max(1);
    config
        .share_tls()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    config.max_in_flight = config.max_in_flight.div_ceil(count).max(1);
    config.max_queued = config.max_queued.div_ceil(count).max(1);
    (0..count).map(|_| Engine::new(config.clone())).collect()
}

/// How to build a [`Client`].
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Engine settings: timeouts, limits, in-flight cap, TLS roots, resolver.
    pub engine: EngineConfig,
    /// `internal://` roots and sandbox mode.
    pub roots: Roots,
    /// Where callbacks run.
    pub dispatch: Dispatch,
    /// Where resumable uploads keep their upload resources between runs
    /// (default: [`crate::resume::default_store`], a directory under the
    /// user's config directory).
    pub resume_store: Option<Arc<dyn ResumeStore>>,
    /// Engines, one thread each (0 and 1: one). Each upload goes to the
    /// engine with the fewest uploads (ties in turn); each engine has its
    /// own connections, and `engine.max_in_flight` and `max_queued` are
    /// shared out among them. Nothing is locked across engines.
    pub engines: usize,
}

/// An engine with its roots and dispatch. Cheap to clone. Several can run
/// side by side (for example one per core).
///
/// ```no_run
/// use std::time::Duration;
/// use uploadtask::{Client, ClientConfig, EngineConfig, Roots, UploadOptions};
///
/// let client = Client::new(ClientConfig {
///     engine: EngineConfig {
///         max_in_flight: 64,
///         connect_timeout: Duration::from_secs(10),
///         ..EngineConfig::default()
///     },
///     roots: Roots::new().root("cache", "/data/app/cache"),
///     ..ClientConfig::default()
/// })?;
/// let outcome = client
///     .upload_file(UploadOptions::new("https://example.com/up", "internal://cache/log.txt", "log"))
///     .wait();
/// match outcome {
///     Ok(response) => println!("{} {}", response.status_code, response.data),
///     Err(error) => println!("fail {} {}", error.code(), error),
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    lanes: Arc<[Lane]>,
    /// Where the search for the least-loaded engine starts (ties in turn).
    turn: Arc<AtomicUsize>,
    roots: Arc<Roots>,
    dispatch: Dispatch,
    store: Arc<dyn ResumeStore>,
}

/// One engine and the uploads it holds.
#[derive(Debug)]
struct Lane {
    engine: Engine,
    load: Arc<AtomicUsize>,
}

static GLOBAL_CONFIG: Mutex<Option<ClientConfig>> = Mutex::new(None);
static GLOBAL: OnceLock<Result<Client, String>> = OnceLock::new();

impl Client {
    /// Starts an engine thread with `config`.
    pub fn new(config: ClientConfig) -> io::Result<Client> {
        let lanes: Vec<Lane> = start_engines(config.engine, config.engines)?
            .into_iter()
            .map(|engine| Lane {
                engine,
                load: Arc::default(),
            })
            .collect();
        Ok(Client {
            lanes: lanes.into(),
            turn: Arc::default(),
            roots: Arc::new(config.roots),
            dispatch: config.dispatch,
            store: config.resume_store.unwrap_or_else(crate::resume::default_store),
        })
    }

    /// Sets the configuration of the global client. Only possible before its
    /// first use; otherwise the configuration is handed back.
    pub fn configure_global(config: ClientConfig) -> Result<(), Box<ClientConfig>> {
        if GLOBAL.get().is_some() {
            return Err(Box::new(config));
        }
        *GLOBAL_CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = Some(config);
        Ok(())
    }

    /// The global client, started on first use.
    pub fn global() -> Result<&'static Client, String> {
        GLOBAL
            .get_or_init(|| {
                let config = GLOBAL_CONFIG
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_default();
                Client::new(config).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The (first) engine underneath.
    pub fn engine(&self) -> &Engine {
        &self.lanes[0].engine
    }

    /// Every engine underneath.
    pub fn engines(&self) -> impl Iterator<Item = &Engine> {
        self.lanes.iter().map(|lane| &lane.engine)
    }

    /// The engine with the fewest uploads, the search starting in turn.
    fn pick(&self) -> &Lane {
        let count = self.lanes.len();
        if count == 1 {
            return &self.lanes[0];
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) % count;
        (0..count)
            .map(|i| &self.lanes[(start + i) % count])
            .min_by_key(|lane| lane.load.load(Ordering::Relaxed))
            .unwrap_or(&self.lanes[0])
    }

    /// `uploadFile(options)`: returns the task at once, before any I/O.
    /// Every outcome, argument errors included, arrives through the
    /// callbacks (and `wait`/`.await`), never inside this call.
    pub fn upload_file(&self, options: UploadOptions) -> UploadTask {
        self.start(options, None)
    }

    /// A task for `options` that fails with `error` without sending
    /// anything, its callbacks run as any task's (through the dispatch): a
    /// bridge that could not read the options object (bad JSON) reports it
    /// the documented way.
    pub fn upload_file_rejected(&self, options: UploadOptions, error: UploadError) -> UploadTask {
        self.start(options, Some(error))
    }

    fn start(&self, mut options: UploadOptions, rejected: Option<UploadError>) -> UploadTask {
        let listeners = std::mem::take(&mut options.listeners);
        let head_listeners = std::mem::take(&mut options.head_listeners);
        let lane = self.pick();
        lane.load.fetch_add(1, Ordering::Relaxed);
        let engine = &lane.engine;
        let (task, inner) = UploadTask::new(Some(engine.clone()), self.dispatch.clone(), listeners, head_listeners);
        let callbacks = Callbacks {
            success: options.success.take(),
            fail: options.fail.take(),
            complete: options.complete.take(),
            request_head: options.request_head.take(),
            response_head: options.response_head.take(),
        };
        let mut sink = TaskSink {
            inner,
            callbacks: Some(callbacks),
            resume: None,
            load: Some(Arc::clone(&lane.load)),
        };
        if rejected.is_none() && options.url.starts_with("s3://") {
            let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
            task.set_cancel(Arc::clone(&cancel));
            match crate::s3::job(&options, &self.roots, &self.store, engine) {
                Ok(job) => crate::s3::start(engine.clone(), job, cancel, sink),
                Err(error) => {
                    task.set_id(engine.reject(error, sink));
                }
            }
            return task;
        }
        let prepared = match rejected {
            Some(error) => Err(error),
            None => self.request(options, engine),
        };
        let id = match prepared {
            Ok((request, resume)) => {
                sink.resume = resume;
                engine.submit(request, sink)
            }
            Err(error) => engine.reject(error, sink),
        };
        task.set_id(id);
        task
    }

    fn request(
        &self,
        options: UploadOptions,
        engine: &Engine,
    ) -> Result<(UploadRequest, Option<ResumeHook>), UploadError> {
        let missing = |what: &str| UploadError::new(ErrorKind::InvalidArgument, format!("missing {what}"));
        if options.url.trim().is_empty() {
            return Err(missing("url"));
        }
        if let Some(protocol) = options.resumable {
            return self.resumable_request(options, protocol, engine);
        }
        let mut request = UploadRequest::new(options.url);
        if let Some(method) = options.method {
            request.method = method.into();
        }
        if options.raw {
            request.raw_body = Some(match options.body_bytes {
                Some(bytes) => SourceSpec::Memory(bytes),
                None if options.file_path.is_empty() => return Err(missing("filePath")),
                None => self.opener(options.file_path)?.1,
            });
        } else {
            let has_main = !options.file_path.is_empty() || !options.name.is_empty();
            if options.files.is_empty() || has_main {
                if options.name.is_empty() {
                    return Err(missing("name"));
                }
                if options.file_path.is_empty() {
                    return Err(missing("filePath"));
                }
                let mut main = FileEntry::new(options.name, options.file_path);
                main.bytes = options.body_bytes;
                request = request.file(self.file_input(main)?);
            }
            for entry in options.files {
                if entry.name.is_empty() {
                    return Err(missing("name of a files entry"));
                }
                request = request.file(self.file_input(entry)?);
            }
        }
        request.headers = options.header;
        request.fields = options.form_data;
        request.timeout = options.timeout;
        request.max_redirects = options.max_redirects;
        request.retry = options.retry.as_ref().map(RetryOptions::policy);
        request.progress_acked = options.progress_acked;
        request.resend_reused = options.resend_on_reuse;
        request.http = options.http.map(HttpOption::version);
        // Listeners may be added after the call: always ask for the head.
        request.report_headers = true;
        Ok((request, None))
    }

    /// A resumable upload of `filePath` to the endpoint `url`, continuing
    /// the stored upload resource of the same file if there is one.
    fn resumable_request(
        &self,
        options: UploadOptions,
        protocol: ResumableProtocol,
        engine: &Engine,
    ) -> Result<(UploadRequest, Option<ResumeHook>), UploadError> {
        let invalid = |message: &str| UploadError::new(ErrorKind::InvalidArgument, message.to_string());
        if options.file_path.is_empty() {
            return Err(invalid("missing filePath"));
        }
        if !options.files.is_empty() {
            return Err(invalid("a resumable upload sends one file: use filePath, not files"));
        }
        if protocol != ResumableProtocol::Tus && !options.form_data.is_empty() {
            return Err(invalid(
                "only a tus resumable upload carries formData (as its metadata)",
            ));
        }
        let (name, engine_protocol) = match protocol {
            ResumableProtocol::Tus => ("tus", Protocol::Tus),
            ResumableProtocol::Ietf => ("ietf", Protocol::Ietf),
            ResumableProtocol::Gcs => ("gcs", Protocol::Gcs),
        };
        let (filename, source, fingerprint) = match options.body_bytes {
            Some(bytes) => {
                let memory = uploadtask_engine::source::MemorySource(bytes.clone());
                let fingerprint = crate::resume::fingerprint(name, &options.url, &options.file_path, &memory).ok();
                let filename = uploadtask_multipart::basename(&options.file_path).to_string();
                (filename, SourceSpec::Memory(bytes), fingerprint)
            }
            None => {
                let (filename, opener) = self.opener(options.file_path.clone())?;
                // Read here, on the caller's thread: 2 MiB at most. A file
                // that cannot be opened fails on the engine thread as usual.
                let fingerprint = self.roots.open(&options.file_path).ok().and_then(|source| {
                    crate::resume::fingerprint(name, &options.url, &options.file_path, &*source).ok()
                });
                (filename, opener, fingerprint)
            }
        };
        let stored = fingerprint.as_deref().and_then(|fp| self.store.get(fp));
        // A resource past its `Upload-Expires` is gone: start a new one.
        let stored = match (stored, fingerprint.as_deref()) {
            (Some(stored), Some(fp)) if stored.is_expired() => {
                self.store.remove(fp);
                None
            }
            (stored, _) => stored,
        };
        let filetype = uploadtask_multipart::FilePart::new("", filename.as_str(), 0).content_type;
        let mut metadata = vec![
            ("filename".to_string(), filename),
            ("filetype".to_string(), filetype.into_owned()),
        ];
        metadata.extend(options.form_data);
        let mut request = UploadRequest::new(options.url.clone());
        if let Some(method) = options.method {
            request.method = method.into();
        }
        request.raw_body = Some(source);
        request.headers = options.header.clone();
        request.timeout = options.timeout;
        request.retry = options.retry.as_ref().map(RetryOptions::policy);
        request.report_headers = true;
        request.progress_acked = options.progress_acked;
        request.resend_reused = options.resend_on_reuse;
        request.http = options.http.map(HttpOption::version);
        request.resumable = Some(Resumable {
            protocol: engine_protocol,
            upload_url: stored.map(|s| s.url),
            chunk_size: options.chunk_size,
            checksum: options.checksum,
            creation_with_upload: options.creation_with_upload,
            metadata,
        });
        let hook = ResumeHook {
            store: Arc::clone(&self.store),
            fingerprint,
            protocol: engine_protocol,
            url: request.resumable.as_ref().and_then(|r| r.upload_url.clone()),
            terminate: options.terminate_on_abort.then(|| (engine.clone(), options.header)),
        };
        Ok((request, Some(hook)))
    }

    /// Checks a path now (no I/O) and defers the open to the engine thread.
    fn opener(&self, file_path: String) -> Result<(String, SourceSpec), UploadError> {
        let resolved = self.roots.resolve(&file_path)?;
        let roots = Arc::clone(&self.roots);
        Ok((
            resolved.filename,
            SourceSpec::Open(Box::new(move || roots.open(&file_path))),
        ))
    }

    fn file_input(&self, entry: FileEntry) -> Result<FileInput, UploadError> {
        let (filename, source) = match entry.bytes {
            Some(bytes) => (
                uploadtask_multipart::basename(&entry.uri).to_string(),
                SourceSpec::Memory(bytes),
            ),
            None => self.opener(entry.uri)?,
        };
        Ok(FileInput {
            name: entry.name.into(),
            filename: entry.filename.unwrap_or(filename).into(),
            content_type: entry.content_type,
            source,
        })
    }
}

/// `uploadFile` on the global client. If the global engine cannot start
/// (no thread, no poller), the task fails with code 200.
///
/// ```no_run
/// use uploadtask::UploadOptions;
///
/// let task = uploadtask::upload_file(
///     UploadOptions::new("http://127.0.0.1:8080/upload", "internal://mass/download/test.png", "testImg")
///         .success(|res| println!("Upload success.resp = {}", res.data))
///         .fail(|data, code| println!("handling fail, errMsg = {data}, errCode = {code}")),
/// );
/// task.abort(); // as the documented example does: fail("abort", 1000)
/// ```
pub fn upload_file(options: UploadOptions) -> UploadTask {
    match Client::global() {
        Ok(client) => client.upload_file(options),
        Err(why) => failed_task(
            options,
            UploadError::new(ErrorKind::Internal, format!("engine cannot start: {why}")),
        ),
    }
}

/// A task that fails without an engine: callbacks run on a short-lived thread.
fn failed_task(mut options: UploadOptions, error: UploadError) -> UploadTask {
    use uploadtask_engine::EventSink;
    let (task, inner) = UploadTask::new(None, Dispatch::EngineThread, Vec::new(), Vec::new());
    let callbacks = Callbacks {
        success: options.success.take(),
        fail: options.fail.take(),
        complete: options.complete.take(),
        request_head: None,
        response_head: None,
    };
    let mut sink = TaskSink {
        inner,
        callbacks: Some(callbacks),
        resume: None,
        load: None,
    };
    let spawned = std::thread::Builder::new().spawn(move || sink.event(uploadtask_engine::Event::Done(Err(error))));
    if spawned.is_err() {
        log::error!("uploadtask: cannot start a thread to report a failure");
    }
    task
}
