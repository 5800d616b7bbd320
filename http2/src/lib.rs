//! Sans-I/O HTTP/2 (RFC 9113) for uploadtask: bytes in, bytes out, no
//! sockets, no clock, no allocation that a peer can make grow unbounded.
//!
//! - [`conn`]: the client side of one connection: streams opened with
//!   HPACK-coded requests, what each may send now, the server's frames
//!   read into events (heads, bodies, resets, refused streams, GOAWAY).
//! - [`frame`]: every frame type read from the front of a buffer, checked
//!   as the RFC requires (a connection error carries its GOAWAY code), and
//!   written to one.
//! - [`hpack`]: header compression (RFC 7541) with its Huffman code; the
//!   decoder is bounded (table size, table size updates, header list size).
//! - [`message`]: a request's fields from an HTTP/1.1-shaped request (the
//!   headers HTTP/2 forbids dropped), a response gathered from a stream's
//!   events with its body bounded.
//! - [`settings`]: SETTINGS, checked as they arrive.
//! - [`flow`]: the windows we send into and those we give the peer, with
//!   credit returned in large steps.
//!
//! ```
//! use uploadtask_http2::frame::{self, Frame, Parsed};
//!
//! let mut wire = Vec::new();
//! frame::write_ping(*b"12345678", false, &mut wire);
//! match frame::parse(&wire, frame::MIN_MAX_FRAME_SIZE).unwrap() {
//!     Parsed::Frame(Frame::Ping(data), used) => assert_eq!((&data, used), (b"12345678", 17)),
//!     other => panic!("{other:?}"),
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod conn;
pub mod flow;
pub mod frame;
pub mod hpack;
pub mod message;
pub mod settings;

use std::fmt;

/// Header fields in order: (name, value) pairs, names in lower case.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// The connection preface a client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An error code of RST_STREAM and GOAWAY (RFC 9113 §7). Unknown codes
/// are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// NO_ERROR.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS_TIMEOUT.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// STREAM_CLOSED.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// FRAME_SIZE_ERROR.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// REFUSED_STREAM: the stream was not processed; it may be sent again.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// CANCEL.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// COMPRESSION_ERROR.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// CONNECT_ERROR.
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// ENHANCE_YOUR_CALM.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// INADEQUATE_SECURITY.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// HTTP_1_1_REQUIRED.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The RFC's name, if the code is one of its.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        NAMES.get(self.0 as usize).copied()
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
