//! Sans-I/O HTTP/1.1 for uploads: the pieces of a client exchange that are
//! pure byte manipulation, with no sockets, no clock and no allocation that a
//! peer can grow without bound.
//!
//! What it is for:
//! - [`request`]: writing a validated `POST` request head into a caller-owned
//!   buffer ([`request::RequestHead`]), and turning a URL into a
//!   [`request::Target`].
//! - [`response`]: parsing a response head incrementally on top of `httparse`
//!   ([`response::ResponseHeadParser`]), skipping 1xx interim responses.
//! - [`framing`]: deciding how the response body is delimited, in one function
//!   ([`framing::body_framing`]), as RFC 9112 §6.3 says.
//! - [`body`]: decoding the body ([`body::BodyDecoder`]): Content-Length,
//!   chunked ([`chunked::ChunkedDecoder`]) or close-delimited, with caps.
//!
//! What it is not for: connecting, TLS, timeouts, or any decision about when to
//! read or write. The engine crate does that and feeds bytes in here.
//!
//! ```
//! use uploadtask_http1::request::{RequestHead, Target};
//!
//! let target = Target::parse("http://example.com:8080/up?x=1").unwrap();
//! let mut head = Vec::new();
//! RequestHead::new(&target, "multipart/form-data; boundary=b", 5)
//!     .header("X-Token", "t")
//!     .write(&mut head)
//!     .unwrap();
//! assert_eq!(
//!     head,
//!     b"POST /up?x=1 HTTP/1.1\r\n\
//!       Host: example.com:8080\r\n\
//!       User-Agent: uploadtask/0.1\r\n\
//!       Accept: */*\r\n\
//!       Content-Type: multipart/form-data; boundary=b\r\n\
//!       Content-Length: 5\r\n\
//!       X-Token: t\r\n\
//!       \r\n"
//! );
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod body;
pub mod chunked;
pub mod date;
pub mod framing;
pub mod headers;
mod limits;
pub mod request;
pub mod response;

pub use body::{BodyDecoder, BodyError, Decoded};
pub use chunked::{ChunkedDecoder, ChunkedError};
pub use framing::{body_framing, BodyKind, Framing, FramingError};
pub use headers::{Header, Headers};
pub use limits::Limits;
pub use request::{HeadError, RequestHead, Target};
pub use response::{ParseStatus, ResponseError, ResponseHead, ResponseHeadParser};
