//! Decoding `Transfer-Encoding: chunked`, resumable at any byte.
//!
//! ```text
//!  ┌─► Size ──hex──► Size ─;─► Extension ─┐
//!  │     │ SP/HTAB ─► SizeWs ─;───────────┤
//!  │     └───────────CR──────────────────►SizeLf ─LF─┬─(size>0)─► Data ─► DataCr ─CR─► DataLf ─LF─┐
//!  │                                                 └─(size=0)─► TrailerStart                    │
//!  └──────────────────────────────────────────────────────────────────────────────────────────────┘
//!  TrailerStart ─CR─► EndLf ─LF─► Done
//!  TrailerStart ─tchar─► TrailerName ─:─► TrailerValue ─CR─► TrailerLf ─LF─► TrailerStart
//! ```
//!
//! CRLF is required everywhere; a bare LF is refused. The size line is at most
//! 16 hex digits, the whole line (extensions included) at most
//! `max_chunk_line` bytes, the trailer section at most `max_trailer_bytes`.
//!
//! ```
//! use uploadtask_http1::{ChunkedDecoder, Limits};
//!
//! let mut decoder = ChunkedDecoder::new(&Limits::default());
//! let wire = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n";
//! let mut body = Vec::new();
//! let mut input = &wire[..];
//! while !decoder.is_done() {
//!     let step = decoder.decode(input).unwrap();
//!     body.extend_from_slice(&input[step.body.clone()]);
//!     input = &input[step.consumed..];
//! }
//! assert_eq!(body, b"hello");
//! assert!(input.is_empty());
//! ```

use std::fmt;
use std::ops::Range;

use crate::headers::is_tchar;
use crate::limits::Limits;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkedError {
    /// The chunk size is missing or not hexadecimal.
    InvalidSize,
    /// The chunk size has more than 16 hex digits.
    SizeTooLong,
    /// The chunk-size line (with extensions) is longer than allowed.
    LineTooLong,
    /// A control byte in a chunk extension.
    InvalidExtension,
    /// A line ended with LF alone.
    BareLf,
    /// The chunk data is not followed by CRLF (or CR by LF).
    MissingCrlf,
    /// A trailer field is malformed.
    InvalidTrailer,
    /// The trailer section is larger than allowed.
    TrailersTooLarge,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::InvalidSize => "invalid chunk size",
            ChunkedError::SizeTooLong => "chunk size longer than 16 hex digits",
            ChunkedError::LineTooLong => "chunk-size line too long",
            ChunkedError::InvalidExtension => "invalid chunk extension",
            ChunkedError::BareLf => "bare LF in chunked body",
            ChunkedError::MissingCrlf => "chunk data not followed by CRLF",
            ChunkedError::InvalidTrailer => "invalid trailer field",
            ChunkedError::TrailersTooLarge => "trailer section too large",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// One step of decoding: how much input was used, and which part of it is
/// body data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decoded {
    /// Input bytes used; drop them before the next call.
    pub consumed: usize,
    /// Body bytes, as a range of the input (empty when this step held none).
    pub body: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    SizeWs,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// A resumable chunked decoder; see the module doc for its states.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    size_digits: u8,
    line_len: usize,
    trailer_len: usize,
    max_line: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            size_digits: 0,
            line_len: 0,
            trailer_len: 0,
            max_line: limits.max_chunk_line,
            max_trailer: limits.max_trailer_bytes,
        }
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input` up to the end of the next run of body data (or
    /// to the end of the body). Framing bytes are consumed without output;
    /// body bytes are reported as a range of `input`. Returns with
    /// `consumed == 0` only when `input` is empty or the body is done.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkedError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let take = usize::try_from(self.size).unwrap_or(usize::MAX).min(input.len() - at);
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Decoded {
                    consumed: at + take,
                    body: at..at + take,
                });
            }
            self.step(input[at])?;
            at += 1;
        }
        Ok(Decoded {
            consumed: at,
            body: at..at,
        })
    }

    /// Takes one framing byte.
    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size => self.read_size(byte)?,
            State::SizeWs => self.read_size_ws(byte)?,
            State::Extension => self.read_extension(byte)?,
            State::SizeLf => self.read_size_lf(byte)?,
            State::DataCr => expect(byte, b'\r', State::DataLf)?,
            State::DataLf => expect(byte, b'\n', State::Size)?,
            State::TrailerStart => self.read_trailer_start(byte)?,
            State::TrailerName => self.read_trailer_name(byte)?,
            State::TrailerValue => self.read_trailer_value(byte)?,
            State::TrailerLf => self.read_line_feed(byte, State::TrailerStart)?,
            State::EndLf => self.read_line_feed(byte, State::Done)?,
            // Data is handled in bulk by `decode`; Done takes no bytes.
            State::Data | State::Done => self.state,
        };
        Ok(())
    }

    fn count_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > self.max_line {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }

    fn read_size(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_line_byte()?;
        if let Some(digit) = (byte as char).to_digit(16) {
            self.size_digits += 1;
            if self.size_digits > 16 {
                return Err(ChunkedError::SizeTooLong);
            }
            self.size = self
                .size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(digit)))
                .ok_or(ChunkedError::SizeTooLong)?;
            return Ok(State::Size);
        }
        if self.size_digits == 0 {
            return Err(if byte == b'\n' {
                ChunkedError::BareLf
            } else {
                ChunkedError::InvalidSize
            });
        }
        self.read_size_ws(byte)
    }

    fn read_size_ws(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_line_byte()?;
        match byte {
            b' ' | b'\t' => Ok(State::SizeWs),
            b';' => Ok(State::Extension),
            b'\r' => Ok(State::SizeLf),
            b'\n' => Err(ChunkedError::BareLf),
            _ => Err(ChunkedError::InvalidSize),
        }
    }

    fn read_extension(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_line_byte()?;
        match byte {
            b'\r' => Ok(State::SizeLf),
            b'\n' => Err(ChunkedError::BareLf),
            b'\t' => Ok(State::Extension),
            0..=0x1f | 0x7f => Err(ChunkedError::InvalidExtension),
            _ => Ok(State::Extension),
        }
    }

    fn read_size_lf(&mut self, byte: u8) -> Result<State, ChunkedError> {
        if byte != b'\n' {
            return Err(ChunkedError::InvalidSize);
        }
        self.line_len = 0;
        self.size_digits = 0;
        Ok(if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        })
    }

    fn count_trailer_byte(&mut self) -> Result<(), ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(ChunkedError::TrailersTooLarge);
        }
        Ok(())
    }

    fn read_trailer_start(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_trailer_byte()?;
        match byte {
            b'\r' => Ok(State::EndLf),
            b'\n' => Err(ChunkedError::BareLf),
            b if is_tchar(b) => Ok(State::TrailerName),
            _ => Err(ChunkedError::InvalidTrailer),
        }
    }

    fn read_trailer_name(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_trailer_byte()?;
        match byte {
            b':' => Ok(State::TrailerValue),
            b if is_tchar(b) => Ok(State::TrailerName),
            _ => Err(ChunkedError::InvalidTrailer),
        }
    }

    fn read_trailer_value(&mut self, byte: u8) -> Result<State, ChunkedError> {
        self.count_trailer_byte()?;
        match byte {
            b'\r' => Ok(State::TrailerLf),
            b'\n' => Err(ChunkedError::BareLf),
            b'\t' => Ok(State::TrailerValue),
            0..=0x1f | 0x7f => Err(ChunkedError::InvalidTrailer),
            _ => Ok(State::TrailerValue),
        }
    }

    fn read_line_feed(&mut self, byte: u8, next: State) -> Result<State, ChunkedError> {
        self.count_trailer_byte()?;
        if byte == b'\n' {
            Ok(next)
        } else {
            Err(ChunkedError::MissingCrlf)
        }
    }
}

fn expect(byte: u8, wanted: u8, next: State) -> Result<State, ChunkedError> {
    if byte == wanted {
        Ok(next)
    } else {
        Err(ChunkedError::MissingCrlf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        let mut body = Vec::new();
        let mut at = 0;
        while !decoder.is_done() && at < wire.len() {
            let step = decoder.decode(&wire[at..])?;
            body.extend_from_slice(&wire[at..][step.body]);
            at += step.consumed;
        }
        assert!(decoder.is_done(), "incomplete");
        Ok((body, at))
    }

    #[test]
    fn simple_and_extensions() {
        let (body, used) = decode_all(b"3\r\nabc\r\nA ; x=\"y\"\r\n0123456789\r\n0\r\n\r\nNEXT").unwrap();
        assert_eq!(body, b"abc0123456789");
        assert_eq!(used, 36);
    }

    #[test]
    fn trailers() {
        let (body, _) = decode_all(b"1\r\nx\r\n0\r\nA: 1\r\nB-c: two words\r\n\r\n").unwrap();
        assert_eq!(body, b"x");
        assert_eq!(
            decode_all(b"0\r\nBad Name: 1\r\n\r\n"),
            Err(ChunkedError::InvalidTrailer)
        );
        assert_eq!(decode_all(b"0\r\nA: 1\n\r\n"), Err(ChunkedError::BareLf));
    }

    #[test]
    fn size_of_seventeen_hex_digits_refused() {
        assert_eq!(decode_all(b"10000000000000000\r\n"), Err(ChunkedError::SizeTooLong));
        assert_eq!(decode_all(b"00000000000000001\r\n"), Err(ChunkedError::SizeTooLong));
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        let step = decoder.decode(b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!(step.body, 18..20);
    }

    #[test]
    fn malformed_sizes() {
        for bad in [&b"\r\n"[..], b"g\r\n", b"-1\r\n", b"+1\r\n", b"1 2\r\n", b";x\r\n"] {
            assert_eq!(decode_all(bad), Err(ChunkedError::InvalidSize), "{bad:?}");
        }
    }

    #[test]
    fn bare_lf_refused() {
        assert_eq!(decode_all(b"3\nabc\r\n0\r\n\r\n"), Err(ChunkedError::BareLf));
        assert_eq!(decode_all(b"3;e\nabc"), Err(ChunkedError::BareLf));
        assert_eq!(decode_all(b"0\r\n\n"), Err(ChunkedError::BareLf));
    }

    #[test]
    fn crlf_required_after_data() {
        assert_eq!(decode_all(b"3\r\nabcX\r\n"), Err(ChunkedError::MissingCrlf));
        assert_eq!(decode_all(b"3\r\nabc\rX"), Err(ChunkedError::MissingCrlf));
        assert_eq!(decode_all(b"3\r\nabc\n0\r\n\r\n"), Err(ChunkedError::MissingCrlf));
        assert_eq!(decode_all(b"0\r\n\rX"), Err(ChunkedError::MissingCrlf));
    }

    #[test]
    fn endless_extension_refused() {
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        assert!(decoder.decode(b"1;").is_ok());
        let filler = vec![b'a'; 1024];
        let mut result = Ok(());
        for _ in 0..8 {
            if let Err(e) = decoder.decode(&filler) {
                result = Err(e);
                break;
            }
        }
        assert_eq!(result, Err(ChunkedError::LineTooLong));
        assert_eq!(
            decode_all(b"1;a\x01b\r\nx\r\n0\r\n\r\n"),
            Err(ChunkedError::InvalidExtension)
        );
    }

    #[test]
    fn endless_trailers_refused() {
        let mut wire = b"0\r\n".to_vec();
        while wire.len() < 20_000 {
            wire.extend_from_slice(b"X: aaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        assert_eq!(decoder.decode(&wire), Err(ChunkedError::TrailersTooLarge));
    }
}
