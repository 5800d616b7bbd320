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
//! Inside, from pure to I/O (private; `docs/DESIGN.md` tells the design):
//! - `proto`: everything that decides without I/O, as `handle_*`/`poll_*`
//!   state machines: an upload's transfer across its exchanges (redirects,
//!   retries, resumable sessions), its life (resolve, connect, TLS,
//!   timeouts), one request/response exchange.
//! - `io`: transports (TCP, TLS over any [`Transport`]), file sources, the
//!   resolver's threads, the pump that moves bytes between an exchange and
//!   a transport.
//! - the driver: `Poll`, a `Slab` of uploads and one of connections,
//!   timers, the idle pool, commands through a channel and `mio::Waker`.
//!
//! The `testing` feature makes `proto` and `io` public, with a scripted
//! transport, for tests and fuzzing.
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
#[cfg(feature = "testing")]
pub mod io;
#[cfg(not(feature = "testing"))]
mod io;
#[cfg(feature = "testing")]
pub mod proto;
#[cfg(not(feature = "testing"))]
mod proto;
mod request;
mod stats;

// What a library user configures and extends, by short paths.
pub use io::{resolver, source, tls, transport};
pub use proto::{progress, proxy, resumable, retry};
// The sans-I/O cores and the test doubles, for tests and fuzzing.
#[cfg(feature = "testing")]
pub use io::{pump, scripted, sendq};
#[cfg(feature = "testing")]
pub use proto::{exchange, mux};

pub use config::EngineConfig;
pub use engine::{Engine, Refused};
pub use error::{ErrorKind, TlsFailure, UploadError};
pub use events::{Event, EventSink, UploadId};
pub use progress::Progress;
pub use proto::exchange::Response;
pub use request::{FileInput, HttpVersion, Opener, SourceSpec, UploadRequest};
pub use resolver::{Resolver, StaticResolver, ThreadPoolResolver};
pub use source::{BodySource, FileSource, FileWindow, MemorySource};
pub use stats::Stats;
pub use transport::{Connector, Sendfile, TcpConnector, Transport};
pub use uploadtask_http1::{Header, Headers, Limits};
