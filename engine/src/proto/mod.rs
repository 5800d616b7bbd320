//! Everything that decides without I/O: no sockets, no files, no clock
//! (`now` comes in). Each module is a state machine or a pure function with
//! its own tests; the driver feeds them events and does what they return.
//! Nothing here imports from [`crate::io`] or the driver.

pub mod ack;
pub mod exchange;
pub mod mux;
pub mod names;
pub mod progress;
pub mod proxy;
pub mod race;
pub mod redirect;
pub mod resumable;
pub mod retry;
pub mod reuse;
pub mod sharing;
pub mod stream_head;
pub(crate) mod transfer;
pub mod upload;
