//! Reading a response body whatever its framing, with a cap on what is kept.
//!
//! ```
//! use uploadtask_http1::{BodyDecoder, BodyKind, Limits};
//!
//! let mut body = BodyDecoder::new(BodyKind::Length(3), &Limits::default());
//! let step = body.decode(b"abcEXTRA").unwrap();
//! assert_eq!((step.consumed, step.body), (3, 0..3));
//! assert!(body.is_done());
//! ```

use std::fmt;

pub use crate::chunked::Decoded;
use crate::chunked::{ChunkedDecoder, ChunkedError};
use crate::framing::BodyKind;
use crate::limits::Limits;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The chunked framing is malformed.
    Chunked(ChunkedError),
    /// The body is larger than `max_body_bytes`.
    TooLarge,
    /// The connection ended before the body did, after this many body bytes.
    Incomplete {
        /// Body bytes received before the end.
        received: u64,
    },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Chunked(e) => e.fmt(f),
            BodyError::TooLarge => f.write_str("response body too large"),
            BodyError::Incomplete { received } => {
                write!(f, "connection closed after {received} response body bytes")
            }
        }
    }
}

impl std::error::Error for BodyError {}

impl From<ChunkedError> for BodyError {
    fn from(e: ChunkedError) -> Self {
        BodyError::Chunked(e)
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    Close { ended: bool },
}

/// Decodes one response body; counts and caps the body bytes.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: Kind,
    received: u64,
    max: u64,
}

impl BodyDecoder {
    /// A decoder for a body framed as `kind`.
    pub fn new(kind: BodyKind, limits: &Limits) -> Self {
        let kind = match kind {
            BodyKind::None => Kind::Length { remaining: 0 },
            BodyKind::Length(remaining) => Kind::Length { remaining },
            BodyKind::Chunked => Kind::Chunked(ChunkedDecoder::new(limits)),
            BodyKind::CloseDelimited => Kind::Close { ended: false },
        };
        BodyDecoder {
            kind,
            received: 0,
            max: limits.max_body_bytes,
        }
    }

    /// True once the whole body has been read.
    pub fn is_done(&self) -> bool {
        match &self.kind {
            Kind::Length { remaining } => *remaining == 0,
            Kind::Chunked(decoder) => decoder.is_done(),
            Kind::Close { ended } => *ended,
        }
    }

    /// Body bytes decoded so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Decodes from `input` up to the next run of body data; see
    /// [`ChunkedDecoder::decode`]. Bytes after the end of the body are left
    /// unconsumed.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, BodyError> {
        let step = match &mut self.kind {
            Kind::Length { remaining } => {
                if self.received.saturating_add(*remaining) > self.max {
                    return Err(BodyError::TooLarge);
                }
                let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                *remaining -= take as u64;
                Decoded {
                    consumed: take,
                    body: 0..take,
                }
            }
            Kind::Chunked(decoder) => decoder.decode(input)?,
            Kind::Close { ended: true } => Decoded {
                consumed: 0,
                body: 0..0,
            },
            Kind::Close { ended: false } => Decoded {
                consumed: input.len(),
                body: 0..input.len(),
            },
        };
        self.received += step.body.len() as u64;
        if self.received > self.max {
            return Err(BodyError::TooLarge);
        }
        Ok(step)
    }

    /// The connection ended cleanly (EOF, or TLS close_notify). Ends a
    /// close-delimited body; for any other body not yet done, an error.
    pub fn handle_eof(&mut self) -> Result<(), BodyError> {
        if let Kind::Close { ended } = &mut self.kind {
            *ended = true;
        }
        if self.is_done() {
            Ok(())
        } else {
            Err(BodyError::Incomplete {
                received: self.received,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_body_and_early_eof() {
        let mut body = BodyDecoder::new(BodyKind::Length(5), &Limits::default());
        assert_eq!(body.decode(b"ab").unwrap().body, 0..2);
        assert_eq!(body.handle_eof(), Err(BodyError::Incomplete { received: 2 }));
    }

    #[test]
    fn close_delimited_ends_on_eof() {
        let mut body = BodyDecoder::new(BodyKind::CloseDelimited, &Limits::default());
        assert_eq!(body.decode(b"abc").unwrap().consumed, 3);
        assert!(!body.is_done());
        assert_eq!(body.handle_eof(), Ok(()));
        assert!(body.is_done());
        assert_eq!(body.received(), 3);
    }

    #[test]
    fn cap_applies_to_every_framing() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::default()
        };
        assert_eq!(
            BodyDecoder::new(BodyKind::Length(5), &limits).decode(b""),
            Err(BodyError::TooLarge)
        );
        let mut close = BodyDecoder::new(BodyKind::CloseDelimited, &limits);
        assert_eq!(close.decode(b"12345"), Err(BodyError::TooLarge));
        let mut chunked = BodyDecoder::new(BodyKind::Chunked, &limits);
        assert_eq!(
            chunked.decode(b"4\r\n1234\r\n"),
            Ok(Decoded {
                consumed: 7,
                body: 3..7
            })
        );
        assert_eq!(chunked.decode(b"\r\n1\r\n5"), Err(BodyError::TooLarge));
    }

    #[test]
    fn no_body_is_done_at_once() {
        let mut body = BodyDecoder::new(BodyKind::None, &Limits::default());
        assert!(body.is_done());
        assert_eq!(body.decode(b"x").unwrap().consumed, 0);
        assert_eq!(body.handle_eof(), Ok(()));
    }
}
