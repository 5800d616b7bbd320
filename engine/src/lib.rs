//! The uploadtask engine: one `mio` event loop on its own thread driving
//! thousands of `multipart/form-data` uploads over HTTP/1.1 and HTTPS.
//!
//! What it is for: submitting uploads from any thread ([`Engine::submit`]),
//! aborting them ([`Engine::abort`]), and receiving progress and outcomes
//! through an [`EventSink`]. Progress counts only bytes the kernel accepted
//! (on TLS: whose records were written whole).
//!
//! What it is not for: the documented `uploadFile` API, `internal://` paths
//! or callbacks on another thread; the `uploadtask` facade crate builds
//! those on this one.
//!
//! Layers, from pure to I/O:
//! - [`upload::Upload`]: one upload's life (resolve, connect to each address,
//!   TLS, timeouts, one retry of a stale pooled connection), sans-I/O.
//! - [`exchange::Exchange`]: one request/response, sans-I/O (`handle_*`/`poll_*`).
//! - [`pump`]: writes and reads between an exchange and a [`Transport`] until
//!   `WouldBlock`; shared by the loop and the scripted tests.
//! - the driver (private): `Poll`, a `Slab` of uploads and one of connections,
//!   timers, the idle pool, commands through a channel and `mio::Waker`.
//!
//! ```no_run
//! use uploadtask_engine::{Engine, EngineConfig, Event, FileInput, UploadRequest};
//!
//! let engine = Engine::new(EngineConfig::default()).unwrap();
//! let (tx, rx) = std::sync::mpsc::channel();
//! let request = UploadRequest::new("http://127.0.0.1:8080/upload")
//!     .field("user", "42")
//!     .file(FileInput::path("file", "/tmp/photo.png"));
//! engine.submit(request, move |event: Event| {
//!     if let Event::Done(result) = event {
//!         let _ = tx.send(result);
//!     }
//! });
//! match rx.recv().unwrap() {
//!     Ok(response) => println!("status {}", response.status),
//!     Err(error) => println!("fail {} {}", error.code(), error),
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod driver;
mod engine;
pub mod error;
mod events;
pub mod io;
pub mod proto;
mod request;
mod stats;

// The modules keep their short paths (`uploadtask_engine::exchange`, …).
pub use io::{pump, resolver, scripted, sendq, source, tls, transport};
pub use proto::{ack, exchange, names, progress, proxy, race, redirect, resumable, retry, reuse, upload};

pub use config::EngineConfig;
pub use engine::{Engine, Refused};
pub use error::{ErrorKind, TlsFailure, UploadError};
pub use events::{Event, EventSink, UploadId};
pub use exchange::Response;
pub use progress::Progress;
pub use request::{FileInput, Opener, SourceSpec, UploadRequest};
pub use resolver::{Resolver, StaticResolver, ThreadPoolResolver};
pub use source::{BodySource, FileSource, MemorySource};
pub use stats::Stats;
pub use transport::{Connector, Sendfile, TcpConnector, Transport};
pub use uploadtask_http1::{Header, Headers, Limits};
