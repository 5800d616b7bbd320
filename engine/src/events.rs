//! What an engine tells about an upload: its id, its events, and the sink
//! that receives them.

use std::fmt;

use crate::error::UploadError;
use crate::proto::exchange::Response;
use crate::proto::progress::Progress;
use crate::proto::resumable;
use uploadtask_http1::Headers;

/// Identifies one submitted upload. Never reused within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(pub u64);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upload#{}", self.0)
    }
}

/// What an upload reports, in this order: progress events (never after
/// `Done`), then exactly one `Done`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Body bytes on the wire rose (see [`progress`](crate::progress) for when).
    Progress(Progress),
    /// The request head went out whole (its bytes), when the request asked
    /// for heads ([`UploadRequest::report_headers`](crate::UploadRequest::report_headers)); again after a redirect.
    RequestHead(Vec<u8>),
    /// Response heads arrived, as received: every 1xx interim head and the
    /// final one, also those of redirects that are followed (for tracing,
    /// as curl's `-v`), when the request asked for heads
    /// ([`UploadRequest::report_headers`](crate::UploadRequest::report_headers)).
    ResponseHeadBytes(Vec<u8>),
    /// The final response head arrived (status code).
    ResponseHead(u16),
    /// The final response head's status and headers, right after
    /// `ResponseHead`, when the request asked for them
    /// ([`UploadRequest::report_headers`](crate::UploadRequest::report_headers)).
    Headers(u16, Headers),
    /// A resumable upload's resource was learned or lost (for a store that
    /// resumes the upload after a restart).
    Resumable(resumable::UrlChange),
    /// The outcome: a response (any status) or an error.
    Done(Result<Response, UploadError>),
}

/// Receives an upload's events on the engine thread. Keep it quick: the loop
/// waits while it runs.
pub trait EventSink: Send + 'static {
    /// Called with each event of the upload.
    fn event(&mut self, event: Event);
}

impl<F: FnMut(Event) + Send + 'static> EventSink for F {
    fn event(&mut self, event: Event) {
        self(event)
    }
}
