//! The `uploadtask` program: `upload`, `serve`, `demo`, `load`,
//! and the receiver it serves with ([`serve::Receiver`], a hyper + multer
//! server that the end-to-end tests use as an independent peer).
//!
//! What it is for: people at a terminal, and load tests. What it is not
//! for: embedding. The `uploadtask` library crate has none of these
//! dependencies (tokio, hyper, clap, indicatif, multer).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
pub mod serve;

pub use cli::{run, USAGE};
