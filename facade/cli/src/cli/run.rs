//! `uploadtask run SCRIPT.js… [--root NAME=DIR]…`: a JavaScript host on
//! QuickJS (rquickjs), the engine quick-app runtimes on small devices are
//! built around, in which `@system.uploadtask` is the documented module:
//! `import uploadtask from '@system.uploadtask'` (a script with `import` is
//! run as a module), `require("@system.uploadtask")`, and the global
//! `uploadtask` the page's examples use. `console`, `setTimeout` and
//! `clearTimeout` behave as in a runtime; `JSON` is QuickJS's.
//!
//! One thread: the host loop runs QuickJS's pending jobs, the timers that
//! are due, and the uploads' callbacks (queued by the engine through a
//! [`Dispatch::Queue`]), until no upload, timer or job is pending. A
//! callback that throws is reported on stderr with the script's line; the
//! other callbacks of that upload (a `complete` after a throwing `success`)
//! and other uploads go on. Scripts given together share one global scope
//! (the page's second example uses the first one's task).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::loader::{BuiltinLoader, BuiltinResolver};
use rquickjs::{CatchResultExt, Context, Ctx, Function, Module, Object, Runtime};
use uploadtask::{
    Client, ClientConfig, Dispatch, ErrorKind, EventQueue, Roots, UploadError, UploadOptions, UploadTask,
};

use super::args::USAGE;

const PRELUDE: &str = include_str!("run_prelude.js");

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Scripts, run in order in one global scope.
    #[arg(required = true)]
    scripts: Vec<PathBuf>,
    /// Map internal://NAME/ to DIR (repeatable).
    #[arg(long = "root", value_name = "NAME=DIR")]
    roots: Vec<String>,
}

/// What the engine's callbacks hand to the JS thread: (kind, task, JSON).
type Events = Arc<Mutex<VecDeque<(&'static str, u64, String)>>>;

struct Host {
    client: Client,
    events: Events,
    tasks: HashMap<u64, UploadTask>,
    next_task: u64,
    timers: BTreeSet<(Instant, u64)>,
    timer_at: HashMap<u64, Instant>,
}

impl Host {
    fn upload(&mut self, json: &str) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        let push = |kind: &'static str| {
            let events = Arc::clone(&self.events);
            move |payload: String| {
                events
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back((kind, id, payload));
            }
        };
        let (success, fail, complete, progress, headers) = (
            push("success"),
            push("fail"),
            push("complete"),
            push("progress"),
            push("headers"),
        );
        let parsed = serde_json::from_str::<UploadOptions>(json)
            .map_err(|e| UploadError::new(ErrorKind::InvalidArgument, format!("options: {e}")));
        let (options, rejected) = match parsed {
            Ok(options) => (options, None),
            Err(error) => (UploadOptions::default(), Some(error)),
        };
        let options = options
            .success(move |res| success(serde_json::to_string(res).unwrap_or_default()))
            .fail(move |data, code| fail(serde_json::json!({ "data": data, "code": code }).to_string()))
            .complete(move || complete(String::new()))
            .on_progress_update(move |p| progress(serde_json::to_string(p).unwrap_or_default()))
            .on_headers_received(move |h| headers(serde_json::to_string(h).unwrap_or_default()));
        let task = match rejected {
            None => self.client.upload_file(options),
            Some(error) => self.client.upload_file_rejected(options, error),
        };
        self.tasks.insert(id, task);
        id
    }

    fn set_timer(&mut self, id: u64, delay_ms: f64) {
        let delay = Duration::try_from_secs_f64(delay_ms / 1000.0).unwrap_or(Duration::ZERO);
        let at = Instant::now().checked_add(delay).unwrap_or_else(Instant::now);
        self.timers.insert((at, id));
        self.timer_at.insert(id, at);
    }

    fn clear_timer(&mut self, id: u64) {
        if let Some(at) = self.timer_at.remove(&id) {
            self.timers.remove(&(at, id));
        }
    }

    /// The timers due now, removed.
    fn due_timers(&mut self) -> Vec<u64> {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.timer_at.remove(&id);
            due.push(id);
        }
        due
    }
}

/// Prints an exception QuickJS threw: its message and stack (with the
/// script's name and line).
fn report_error(error: rquickjs::CaughtError<'_>, where_: &str) {
    eprintln!("uploadtask run: uncaught error in {where_}: {error}");
}

fn install(ctx: &Ctx<'_>, host: &Rc<RefCell<Host>>) -> rquickjs::Result<()> {
    let natives = Object::new(ctx.clone())?;
    natives.set(
        "log",
        Function::new(ctx.clone(), |level: i32, text: String| {
            if level >= 2 {
                eprintln!("{text}");
            } else {
                println!("{text}");
            }
        })?,
    )?;
    let h = Rc::clone(host);
    natives.set(
        "upload",
        Function::new(ctx.clone(), move |json: String| h.borrow_mut().upload(&json) as f64)?,
    )?;
    let h = Rc::clone(host);
    natives.set(
        "abort",
        Function::new(ctx.clone(), move |id: f64| {
            if let Some(task) = h.borrow().tasks.get(&(id as u64)) {
                task.abort();
            }
        })?,
    )?;
    let h = Rc::clone(host);
    natives.set(
        "setTimer",
        Function::new(ctx.clone(), move |id: f64, delay: f64| {
            h.borrow_mut().set_timer(id as u64, delay)
        })?,
    )?;
    let h = Rc::clone(host);
    natives.set(
        "clearTimer",
        Function::new(ctx.clone(), move |id: f64| h.borrow_mut().clear_timer(id as u64))?,
    )?;
    ctx.globals().set("__host", natives)?;
    ctx.eval::<(), _>(PRELUDE)
}

/// Runs scripts: parse → build → drive → report.
pub fn run(args: RunArgs) -> i32 {
    let (roots, sources) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let js = match build(roots) {
        Ok(js) => js,
        Err(status) => return status,
    };
    let failed = drive(&js, &sources);
    report(failed)
}

/// The roots and the scripts' sources.
fn parse(args: &RunArgs) -> Result<(Roots, Vec<(PathBuf, String)>), i32> {
    let mut roots = Roots::new().allow_plain_paths();
    for root in &args.roots {
        match root.split_once('=') {
            Some((name, dir)) if !name.is_empty() => roots = roots.root(name, dir),
            _ => {
                eprintln!("uploadtask: --root must look like NAME=DIR: {root:?}");
                return Err(USAGE);
            }
        }
    }
    let mut sources = Vec::new();
    for path in &args.scripts {
        match std::fs::read_to_string(path) {
            Ok(source) => sources.push((path.clone(), source)),
            Err(e) => {
                eprintln!("uploadtask: {}: {e}", path.display());
                return Err(USAGE);
            }
        }
    }
    Ok((roots, sources))
}

/// The JavaScript runtime with its host: a client whose callbacks are
/// queued for this thread.
struct Js {
    // Dropped in this order, as locals of one function would be.
    context: Context,
    runtime: Runtime,
    host: Rc<RefCell<Host>>,
    queue: EventQueue,
}

fn build(roots: Roots) -> Result<Js, i32> {
    let queue = EventQueue::new();
    let client = Client::new(ClientConfig {
        roots,
        dispatch: Dispatch::Queue(queue.clone()),
        ..ClientConfig::default()
    })
    .map_err(|e| {
        eprintln!("uploadtask: cannot start the engine: {e}");
        1
    })?;
    let host = Rc::new(RefCell::new(Host {
        client,
        events: Events::default(),
        tasks: HashMap::new(),
        next_task: 1,
        timers: BTreeSet::new(),
        timer_at: HashMap::new(),
    }));
    let (runtime, context) = Runtime::new()
        .and_then(|rt| Context::full(&rt).map(|ctx| (rt, ctx)))
        .map_err(|e| {
            eprintln!("uploadtask: cannot start QuickJS: {e}");
            1
        })?;
    runtime.set_loader(
        BuiltinResolver::default().with_module("@system.uploadtask"),
        BuiltinLoader::default().with_module("@system.uploadtask", "export default globalThis.__uploadtask;"),
    );
    Ok(Js {
        context,
        runtime,
        host,
        queue,
    })
}

/// Evaluates the scripts, then runs jobs, timers and callbacks until none
/// is pending; `true` when a script failed.
fn drive(js: &Js, sources: &[(PathBuf, String)]) -> bool {
    let failed = evaluate(js, sources);
    let (host, runtime, context) = (&js.host, &js.runtime, &js.context);
    loop {
        while runtime.is_job_pending() {
            if runtime.execute_pending_job().is_err() {
                context.with(|ctx| eprintln!("uploadtask run: uncaught error in a promise job: {:?}", ctx.catch()));
            }
        }
        let events: Vec<_> = {
            let host = host.borrow();
            let mut queued = host.events.lock().unwrap_or_else(|p| p.into_inner());
            queued.drain(..).collect()
        };
        let due = host.borrow_mut().due_timers();
        if !events.is_empty() || !due.is_empty() {
            context.with(|ctx| {
                for (kind, id, payload) in events {
                    if kind == "complete" {
                        host.borrow_mut().tasks.remove(&id);
                    }
                    let deliver: rquickjs::Result<Function<'_>> = ctx.globals().get("__deliver");
                    let result = deliver
                        .and_then(|f| f.call::<_, ()>((kind, id as f64, payload)))
                        .catch(&ctx);
                    if let Err(e) = result {
                        report_error(e, "the runtime");
                    }
                }
                for id in due {
                    let fire: rquickjs::Result<Function<'_>> = ctx.globals().get("__fireTimer");
                    if let Err(e) = fire.and_then(|f| f.call::<_, ()>((id as f64,))).catch(&ctx) {
                        report_error(e, "the runtime");
                    }
                }
            });
            continue;
        }
        let (idle, next_timer) = {
            let host = host.borrow();
            (
                host.tasks.is_empty() && host.timers.is_empty(),
                host.timers.first().map(|t| t.0),
            )
        };
        if idle && !runtime.is_job_pending() {
            break;
        }
        let wait = next_timer
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        js.queue.run_timeout(wait);
    }
    failed
}

/// Installs the runtime and evaluates each script (a module when it
/// imports or exports); `true` when one failed.
fn evaluate(js: &Js, sources: &[(PathBuf, String)]) -> bool {
    let mut failed = false;
    js.context.with(|ctx| {
        if let Err(e) = install(&ctx, &js.host).catch(&ctx) {
            report_error(e, "the runtime's prelude");
            failed = true;
            return;
        }
        for (path, source) in sources {
            let name = path
                .file_name()
                .map_or_else(|| "script.js".into(), |n| n.to_string_lossy().into_owned());
            let is_module = source.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("import ") || l.starts_with("export ")
            });
            let result = if is_module {
                Module::evaluate(ctx.clone(), name.as_str(), source.as_str())
                    .and_then(|promise| promise.finish::<()>())
                    .catch(&ctx)
            } else {
                let mut options = EvalOptions::default();
                options.global = true;
                options.strict = false;
                // From the file, so errors name it and its lines.
                ctx.eval_file_with_options::<(), _>(path, options).catch(&ctx)
            };
            if let Err(e) = result {
                report_error(e, &name);
                failed = true;
            }
        }
    });
    failed
}

/// Output is flushed; 1 when a script failed.
fn report(failed: bool) -> i32 {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    i32::from(failed)
}
