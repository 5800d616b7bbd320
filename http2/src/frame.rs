//! HTTP/2 frames (RFC 9113 §4, §6), without I/O: [`parse`] reads one frame
//! from the front of a buffer (or says how many bytes are missing), checked
//! as the RFC requires; the `write_*` functions append frames to a buffer.
//!
//! Every check that the RFC makes a connection error is a [`FrameError`]
//! with the code to send in GOAWAY; a check that fails only one stream
//! (a bad PRIORITY length, a zero WINDOW_UPDATE on a stream) is returned as
//! [`Frame::StreamError`] so the connection goes on.

use std::fmt;

use crate::ErrorCode;

/// The frame header's length.
pub const HEADER_LEN: usize = 9;
/// The smallest `SETTINGS_MAX_FRAME_SIZE` (and its initial value).
pub const MIN_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE`.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest window (and WINDOW_UPDATE increment).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame types.
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    /// DATA, HEADERS: the last frame the sender sends on the stream.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: an acknowledgement.
    pub const ACK: u8 = 0x1;
    /// HEADERS, CONTINUATION: the header block ends here.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS: a pad length byte comes first.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: a priority block (5 bytes) comes first.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 §6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload's length.
    pub len: u32,
    /// The type.
    pub kind: u8,
    /// The flags.
    pub flags: u8,
    /// The stream (0: the connection); the reserved bit dropped.
    pub stream: u32,
}

impl FrameHeader {
    /// Reads a header from the first 9 bytes.
    pub fn read(bytes: &[u8; HEADER_LEN]) -> FrameHeader {
        FrameHeader {
            len: u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & MAX_WINDOW,
        }
    }

    /// Appends the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & MAX_WINDOW).to_be_bytes());
    }
}

/// A frame read from a buffer; payloads borrow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// DATA: body bytes (padding removed); `flow_len` is what counts against
    /// flow control (the whole payload, padding included).
    Data {
        /// The stream.
        stream: u32,
        /// The data.
        data: &'a [u8],
        /// The last frame of the stream.
        end_stream: bool,
        /// The payload's length, padding included.
        flow_len: u32,
    },
    /// HEADERS: the first piece of a header block (padding and priority
    /// removed).
    Headers {
        /// The stream.
        stream: u32,
        /// The header block fragment.
        fragment: &'a [u8],
        /// The stream ends after this header block.
        end_stream: bool,
        /// The block is whole (no CONTINUATION follows).
        end_headers: bool,
    },
    /// CONTINUATION: the next piece of a header block.
    Continuation {
        /// The stream.
        stream: u32,
        /// The header block fragment.
        fragment: &'a [u8],
        /// The block ends here.
        end_headers: bool,
    },
    /// RST_STREAM.
    Reset {
        /// The stream.
        stream: u32,
        /// Why.
        code: ErrorCode,
    },
    /// SETTINGS (not an ACK): the (identifier, value) pairs in order.
    Settings(SettingsIter<'a>),
    /// A SETTINGS ACK.
    SettingsAck,
    /// PING, to be answered with the same data.
    Ping([u8; 8]),
    /// A PING ACK.
    PingAck([u8; 8]),
    /// GOAWAY.
    GoAway {
        /// The last stream the peer may have processed.
        last_stream: u32,
        /// Why.
        code: ErrorCode,
        /// Debug data.
        debug: &'a [u8],
    },
    /// WINDOW_UPDATE (stream 0: the connection).
    WindowUpdate {
        /// The stream, or 0.
        stream: u32,
        /// The increment (never 0).
        increment: u32,
    },
    /// A frame that only concerns one stream and is wrong for it: the
    /// stream is reset with `code`; the connection goes on.
    StreamError {
        /// The stream.
        stream: u32,
        /// The code for RST_STREAM.
        code: ErrorCode,
    },
    /// PRIORITY, or a frame of an unknown type: ignored.
    Ignored,
}

/// The pairs of a SETTINGS frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsIter<'a>(&'a [u8]);

impl Iterator for SettingsIter<'_> {
    type Item = (u16, u32);

    fn next(&mut self) -> Option<(u16, u32)> {
        let (pair, rest) = self.0.split_first_chunk::<6>()?;
        self.0 = rest;
        Some((
            u16::from_be_bytes([pair[0], pair[1]]),
            u32::from_be_bytes([pair[2], pair[3], pair[4], pair[5]]),
        ))
    }
}

/// A connection error found in a frame: the GOAWAY code and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The code to send in GOAWAY.
    pub code: ErrorCode,
    /// What was wrong.
    pub reason: &'static str,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.reason, self.code)
    }
}

impl std::error::Error for FrameError {}

fn error(code: ErrorCode, reason: &'static str) -> FrameError {
    FrameError { code, reason }
}

/// What [`parse`] found at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A frame, and the bytes it took.
    Frame(Frame<'a>, usize),
    /// At least this many more bytes are needed.
    Incomplete(usize),
}

/// Reads the frame at the front of `input`. `max_frame_size` is the
/// `SETTINGS_MAX_FRAME_SIZE` we announced: a longer frame is a
/// `FRAME_SIZE_ERROR`.
pub fn parse(input: &[u8], max_frame_size: u32) -> Result<Parsed<'_>, FrameError> {
    let Some(head) = input.first_chunk::<HEADER_LEN>() else {
        return Ok(Parsed::Incomplete(HEADER_LEN - input.len()));
    };
    let header = FrameHeader::read(head);
    if header.len > max_frame_size {
        return Err(error(
            ErrorCode::FRAME_SIZE_ERROR,
            "a frame longer than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let total = HEADER_LEN + header.len as usize;
    if input.len() < total {
        return Ok(Parsed::Incomplete(total - input.len()));
    }
    let frame = frame(header, &input[HEADER_LEN..total])?;
    Ok(Parsed::Frame(frame, total))
}

/// The payload without its padding (`PADDED`).
fn unpad(header: FrameHeader, payload: &[u8]) -> Result<&[u8], FrameError> {
    if header.flags & flag::PADDED == 0 {
        return Ok(payload);
    }
    let (&pad, rest) = payload
        .split_first()
        .ok_or_else(|| error(ErrorCode::FRAME_SIZE_ERROR, "a padded frame without its pad length"))?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|len| &rest[..len])
        .ok_or_else(|| error(ErrorCode::PROTOCOL_ERROR, "padding longer than the frame"))
}

fn frame(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream = header.stream;
    let on_stream = |reason| {
        if stream == 0 {
            Err(error(ErrorCode::PROTOCOL_ERROR, reason))
        } else {
            Ok(())
        }
    };
    let on_connection = |reason| {
        if stream != 0 {
            Err(error(ErrorCode::PROTOCOL_ERROR, reason))
        } else {
            Ok(())
        }
    };
    match header.kind {
        kind::DATA => {
            on_stream("DATA on stream 0")?;
            Ok(Frame::Data {
                stream,
                data: unpad(header, payload)?,
                end_stream: header.flags & flag::END_STREAM != 0,
                flow_len: header.len,
            })
        }
        kind::HEADERS => {
            on_stream("HEADERS on stream 0")?;
            let mut fragment = unpad(header, payload)?;
            if header.flags & flag::PRIORITY != 0 {
                fragment = fragment
                    .get(5..)
                    .ok_or_else(|| error(ErrorCode::FRAME_SIZE_ERROR, "HEADERS too short for its priority"))?;
            }
            Ok(Frame::Headers {
                stream,
                fragment,
                end_stream: header.flags & flag::END_STREAM != 0,
                end_headers: header.flags & flag::END_HEADERS != 0,
            })
        }
        kind::PRIORITY => {
            on_stream("PRIORITY on stream 0")?;
            if payload.len() != 5 {
                return Ok(Frame::StreamError {
                    stream,
                    code: ErrorCode::FRAME_SIZE_ERROR,
                });
            }
            Ok(Frame::Ignored)
        }
        kind::RST_STREAM => {
            on_stream("RST_STREAM on stream 0")?;
            let code = payload
                .first_chunk::<4>()
                .filter(|_| payload.len() == 4)
                .ok_or_else(|| error(ErrorCode::FRAME_SIZE_ERROR, "RST_STREAM not 4 bytes long"))?;
            Ok(Frame::Reset {
                stream,
                code: ErrorCode(u32::from_be_bytes(*code)),
            })
        }
        kind::SETTINGS => {
            on_connection("SETTINGS on a stream")?;
            if header.flags & flag::ACK != 0 {
                if !payload.is_empty() {
                    return Err(error(ErrorCode::FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload"));
                }
                return Ok(Frame::SettingsAck);
            }
            if payload.len() % 6 != 0 {
                return Err(error(ErrorCode::FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes"));
            }
            Ok(Frame::Settings(SettingsIter(payload)))
        }
        kind::PUSH_PROMISE => Err(error(ErrorCode::PROTOCOL_ERROR, "PUSH_PROMISE while push is off")),
        kind::PING => {
            on_connection("PING on a stream")?;
            let data = payload
                .first_chunk::<8>()
                .filter(|_| payload.len() == 8)
                .ok_or_else(|| error(ErrorCode::FRAME_SIZE_ERROR, "PING not 8 bytes long"))?;
            Ok(match header.flags & flag::ACK {
                0 => Frame::Ping(*data),
                _ => Frame::PingAck(*data),
            })
        }
        kind::GOAWAY => {
            on_connection("GOAWAY on a stream")?;
            let (fixed, debug) = payload
                .split_first_chunk::<8>()
                .ok_or_else(|| error(ErrorCode::FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes"))?;
            Ok(Frame::GoAway {
                last_stream: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]) & MAX_WINDOW,
                code: ErrorCode(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]])),
                debug,
            })
        }
        kind::WINDOW_UPDATE => {
            let bytes = payload
                .first_chunk::<4>()
                .filter(|_| payload.len() == 4)
                .ok_or_else(|| error(ErrorCode::FRAME_SIZE_ERROR, "WINDOW_UPDATE not 4 bytes long"))?;
            let increment = u32::from_be_bytes(*bytes) & MAX_WINDOW;
            match (increment, stream) {
                (0, 0) => Err(error(ErrorCode::PROTOCOL_ERROR, "a connection WINDOW_UPDATE of 0")),
                (0, stream) => Ok(Frame::StreamError {
                    stream,
                    code: ErrorCode::PROTOCOL_ERROR,
                }),
                (increment, stream) => Ok(Frame::WindowUpdate { stream, increment }),
            }
        }
        kind::CONTINUATION => {
            on_stream("CONTINUATION on stream 0")?;
            Ok(Frame::Continuation {
                stream,
                fragment: payload,
                end_headers: header.flags & flag::END_HEADERS != 0,
            })
        }
        _ => Ok(Frame::Ignored),
    }
}

/// Appends a SETTINGS frame with `pairs`.
pub fn write_settings(pairs: &[(u16, u32)], out: &mut Vec<u8>) {
    FrameHeader {
        len: (pairs.len() * 6) as u32,
        kind: kind::SETTINGS,
        flags: 0,
        stream: 0,
    }
    .write(out);
    for (id, value) in pairs {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS ACK.
pub fn write_settings_ack(out: &mut Vec<u8>) {
    FrameHeader {
        len: 0,
        kind: kind::SETTINGS,
        flags: flag::ACK,
        stream: 0,
    }
    .write(out);
}

/// Appends a header block as HEADERS and as many CONTINUATION frames as
/// `max_frame_size` (the peer's) needs.
pub fn write_headers(stream: u32, block: &[u8], end_stream: bool, max_frame_size: u32, out: &mut Vec<u8>) {
    let max = max_frame_size.max(MIN_MAX_FRAME_SIZE) as usize;
    let mut pieces = block.chunks(max);
    let first = pieces.next().unwrap_or(&[]);
    let mut rest = pieces.peekable();
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if rest.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    FrameHeader {
        len: first.len() as u32,
        kind: kind::HEADERS,
        flags,
        stream,
    }
    .write(out);
    out.extend_from_slice(first);
    while let Some(piece) = rest.next() {
        let flags = if rest.peek().is_none() { flag::END_HEADERS } else { 0 };
        FrameHeader {
            len: piece.len() as u32,
            kind: kind::CONTINUATION,
            flags,
            stream,
        }
        .write(out);
        out.extend_from_slice(piece);
    }
}

/// The 9-byte header of a DATA frame of `len` bytes (the data follows it
/// on the wire, from wherever it is: a file, a buffer).
pub fn data_header(stream: u32, len: u32, end_stream: bool) -> [u8; HEADER_LEN] {
    let mut out = Vec::with_capacity(HEADER_LEN);
    FrameHeader {
        len,
        kind: kind::DATA,
        flags: if end_stream { flag::END_STREAM } else { 0 },
        stream,
    }
    .write(&mut out);
    let mut header = [0; HEADER_LEN];
    header.copy_from_slice(&out);
    header
}

/// Appends a WINDOW_UPDATE.
pub fn write_window_update(stream: u32, increment: u32, out: &mut Vec<u8>) {
    FrameHeader {
        len: 4,
        kind: kind::WINDOW_UPDATE,
        flags: 0,
        stream,
    }
    .write(out);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// Appends a RST_STREAM.
pub fn write_reset(stream: u32, code: ErrorCode, out: &mut Vec<u8>) {
    FrameHeader {
        len: 4,
        kind: kind::RST_STREAM,
        flags: 0,
        stream,
    }
    .write(out);
    out.extend_from_slice(&code.0.to_be_bytes());
}

/// Appends a PING (or its ACK).
pub fn write_ping(data: [u8; 8], ack: bool, out: &mut Vec<u8>) {
    FrameHeader {
        len: 8,
        kind: kind::PING,
        flags: if ack { flag::ACK } else { 0 },
        stream: 0,
    }
    .write(out);
    out.extend_from_slice(&data);
}

/// Appends a GOAWAY.
pub fn write_goaway(last_stream: u32, code: ErrorCode, debug: &[u8], out: &mut Vec<u8>) {
    FrameHeader {
        len: 8 + debug.len() as u32,
        kind: kind::GOAWAY,
        flags: 0,
        stream: 0,
    }
    .write(out);
    out.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug);
}

#[cfg(test)]
mod tests;
