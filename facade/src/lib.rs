//! `uploadtask`: the documented quick-app `@system.uploadtask` API
//! (`uploadFile` / `UploadTask`) in Rust, on the uploadtask engine.
//!
//! What it is for: starting uploads with the documented options and
//! callbacks ([`upload_file`], [`UploadOptions`], [`UploadTask`]),
//! resolving `internal://` paths in a sandbox ([`paths::Roots`]), running
//! callbacks on the engine thread or on the host's ([`Dispatch`]).
//!
//! What it is not for: HTTP in general. A task uploads a file (or several,
//! with `files`) as `multipart/form-data`, as the documented API does, or
//! one raw body (`raw`, a signed `PUT`). The `uploadtask`
//! program lives in its own crate (`uploadtask-cli`), so this library has
//! only the engine's dependencies:
//!
//! ```toml
//! [dependencies]
//! uploadtask = { path = "facade" }   # from this repository
//! ```
//!
//! `internal://` paths need roots; plain paths are an explicit choice
//! (sandbox mode is the default):
//!
//! ```no_run
//! use uploadtask::{Client, ClientConfig, Roots, UploadOptions};
//!
//! uploadtask::Client::configure_global(ClientConfig {
//!     roots: Roots::new().root("mass", "/data/app/mass"),
//!     ..ClientConfig::default()
//! })
//! .expect("before the first upload");
//! let task = uploadtask::upload_file(UploadOptions::new(
//!     "http://127.0.0.1:8080/upload",
//!     "internal://mass/download/test.png",
//!     "testImg",
//! ));
//! # let _ = task;
//! ```
//!
//! ```no_run
//! use std::time::Duration;
//! use uploadtask::UploadOptions;
//!
//! let task = uploadtask::upload_file(
//!     UploadOptions::new("http://127.0.0.1:8080/upload", "internal://mass/test.png", "testImg")
//!         .header("X-Token", "t")
//!         .form_data("user", "42")
//!         .timeout(Duration::from_millis(5000))
//!         .success(|res| println!("success {} {}", res.status_code, res.data))
//!         .fail(|data, code| println!("fail {code}: {data}"))
//!         .complete(|| println!("complete")),
//! );
//! let id = task.on_progress_update(|p| println!("{}% {}/{}", p.progress, p.total_bytes_sent, p.total_bytes_expected_to_send));
//! task.off_progress_update(Some(id));
//! let outcome = task.wait();
//! # let _ = outcome;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod dispatch;
pub mod options;
pub mod paths;
pub mod response;
pub mod resume;
mod s3;
mod task;

/// The README's Rust examples, compiled as doctests so that they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

pub use client::{start_engines, upload_file, Client, ClientConfig};
pub use dispatch::{Dispatch, EventQueue, ReentrantDispatch};
pub use options::{FileEntry, HttpOption, ResumableProtocol, RetryOptions, UploadOptions};
pub use paths::Roots;
pub use response::{HeadersReceived, ProgressUpdate, UploadResponse};
pub use task::{ListenerId, UploadTask};
pub use uploadtask_engine::{
    Engine, EngineConfig, ErrorKind, HttpVersion, Limits, Refused, Resolver, Sendfile, StaticResolver, Stats,
    ThreadPoolResolver, TlsFailure, UploadError, UploadId,
};
