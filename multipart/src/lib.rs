//! Sans-I/O `multipart/form-data` framing for uploads.
//!
//! A [`Form`] of text fields and file parts becomes a [`Body`]: the exact
//! length ([`Body::content_length`]) known before anything is sent, and the
//! bytes as a short list of [`Segment`]s: small framing/text bytes, and file
//! regions the sender fills straight from the file. No file byte ever passes
//! through this crate. A [`Cursor`] walks the body and can resume after a
//! short write at any byte.
//!
//! What it is not for: reading files, sockets, or parsing multipart (tests
//! use an independent parser for that).
//!
//! ```
//! use uploadtask_multipart::{Chunk, FilePart, Form};
//!
//! let body = Form::new()
//!     .text("user", "42")
//!     .file(FilePart::new("img", "a\"b.png", 3))
//!     .boundary("B")
//!     .build()
//!     .unwrap();
//! let mut wire = Vec::new();
//! let mut cursor = body.cursor();
//! while let Some(chunk) = body.chunk(&cursor) {
//!     let n = match chunk {
//!         Chunk::Bytes(bytes) => { wire.extend_from_slice(bytes); bytes.len() as u64 }
//!         Chunk::File { part: 0, offset: 0, len } => { wire.extend_from_slice(b"PNG"); len }
//!         Chunk::File { .. } => unreachable!(),
//!     };
//!     cursor.advance(&body, n);
//! }
//! assert_eq!(
//!     wire,
//!     b"--B\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n42\r\n\
//!       --B\r\nContent-Disposition: form-data; name=\"img\"; filename=\"a%22b.png\"\r\n\
//!       Content-Type: image/png\r\n\r\nPNG\r\n--B--\r\n"
//! );
//! assert_eq!(body.content_length(), wire.len() as u64);
//! assert_eq!(body.content_type(), "multipart/form-data; boundary=B");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::ops::Range;

/// Length of a random boundary: `uploadtask-` and 32 hex digits.
const RANDOM_BOUNDARY_LEN: usize = 43;

/// Longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// Why a form could not be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormError {
    /// A given boundary is empty, longer than 70 bytes, or has bytes RFC 2046
    /// does not allow.
    InvalidBoundary,
    /// The boundary occurs in a field value, name or filename.
    BoundaryInText,
    /// A file part's content type holds control bytes.
    InvalidContentType(String),
    /// The system random source failed.
    Random,
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::InvalidBoundary => f.write_str("invalid multipart boundary"),
            FormError::BoundaryInText => f.write_str("multipart boundary occurs in the form's text"),
            FormError::InvalidContentType(t) => write!(f, "invalid part content type {t:?}"),
            FormError::Random => f.write_str("random source failed"),
        }
    }
}

impl std::error::Error for FormError {}

/// A file part: its field name, filename, content type and exact length.
/// The bytes themselves stay in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// Form field name.
    pub name: String,
    /// Filename sent in `Content-Disposition`.
    pub filename: String,
    /// `Content-Type` of the part.
    pub content_type: String,
    /// Exact number of file bytes.
    pub len: u64,
}

impl FilePart {
    /// A part named `name` for `filename` (its basename is used) of `len`
    /// bytes; the content type is guessed from the extension, else
    /// `application/octet-stream`.
    pub fn new(name: impl Into<String>, filename: &str, len: u64) -> Self {
        let filename = basename(filename).to_string();
        let content_type = mime_guess::from_path(&filename)
            .first_or_octet_stream()
            .essence_str()
            .to_string();
        FilePart {
            name: name.into(),
            filename,
            content_type,
            len,
        }
    }

    /// Replaces the guessed content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }
}

/// The last `/`-separated component of `path`.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A form to frame: text fields in insertion order, then file parts.
#[derive(Debug, Clone, Default)]
#[must_use = "a Form does nothing until built"]
pub struct Form {
    fields: Vec<(String, String)>,
    files: Vec<FilePart>,
    boundary: Option<String>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Form::default()
    }

    /// Adds a text field.
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Adds a file part; file parts follow all text fields on the wire.
    pub fn file(mut self, part: FilePart) -> Self {
        self.files.push(part);
        self
    }

    /// Uses a fixed boundary instead of a random one (for tests and
    /// reproducible output).
    pub fn boundary(mut self, boundary: impl Into<String>) -> Self {
        self.boundary = Some(boundary.into());
        self
    }

    /// Frames the form. A random boundary has 128 bits of entropy and is
    /// drawn again in the (practically impossible) case that it occurs in
    /// the form's text.
    pub fn build(self) -> Result<Body, FormError> {
        self.build_with_entropy(&mut |bytes| getrandom::fill(bytes).is_ok())
    }

    /// Frames the form, drawing a random boundary's 16 bytes of entropy from
    /// `entropy` (which returns `false` if it cannot). An engine that frames
    /// many forms can draw from a buffer it refills in bulk.
    pub fn build_with_entropy(self, entropy: &mut dyn FnMut(&mut [u8; 16]) -> bool) -> Result<Body, FormError> {
        for part in &self.files {
            if part.content_type.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(FormError::InvalidContentType(part.content_type.clone()));
            }
        }
        let mut random = [0u8; RANDOM_BOUNDARY_LEN];
        let boundary = match &self.boundary {
            Some(b) if !is_valid_boundary(b) => return Err(FormError::InvalidBoundary),
            Some(b) if self.text_contains(b) => return Err(FormError::BoundaryInText),
            Some(b) => b.as_str(),
            None => self.random_boundary(entropy, &mut random)?,
        };
        Ok(Body::frame(&self, boundary))
    }

    /// `uploadtask-` and 32 hex digits, written into `out` (no allocation).
    fn random_boundary<'a>(
        &self,
        fill: &mut dyn FnMut(&mut [u8; 16]) -> bool,
        out: &'a mut [u8; RANDOM_BOUNDARY_LEN],
    ) -> Result<&'a str, FormError> {
        for _ in 0..8 {
            let mut entropy = [0u8; 16];
            if !fill(&mut entropy) {
                return Err(FormError::Random);
            }
            out[..11].copy_from_slice(b"uploadtask-");
            for (i, byte) in entropy.into_iter().enumerate() {
                out[11 + 2 * i] = b"0123456789abcdef"[usize::from(byte >> 4)];
                out[12 + 2 * i] = b"0123456789abcdef"[usize::from(byte & 15)];
            }
            // Only ASCII was written.
            let boundary = std::str::from_utf8(&out[..]).map_err(|_| FormError::Random)?;
            if !self.text_contains(boundary) {
                return std::str::from_utf8(&out[..]).map_err(|_| FormError::Random);
            }
        }
        Err(FormError::BoundaryInText)
    }

    fn text_contains(&self, boundary: &str) -> bool {
        let fields = self.fields.iter().flat_map(|(n, v)| [n, v]);
        let files = self.files.iter().flat_map(|f| [&f.name, &f.filename, &f.content_type]);
        fields.chain(files).any(|text| text.contains(boundary))
    }
}

fn is_valid_boundary(boundary: &str) -> bool {
    let bytes = boundary.as_bytes();
    (1..=MAX_BOUNDARY_LEN).contains(&bytes.len())
        && bytes.last() != Some(&b' ')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
}

/// One piece of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Framing and text bytes, as a range of the body's framing buffer.
    Bytes(Range<usize>),
    /// `len` bytes of file part `part`, from its start.
    File {
        /// Index of the file part, in the order parts were added.
        part: usize,
        /// Bytes of the part.
        len: u64,
    },
}

/// What to send next, from [`Body::chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes of file part `part`, starting at `offset` in the file.
    File {
        /// Index of the file part.
        part: usize,
        /// Offset in the file.
        offset: u64,
        /// Bytes left in this region.
        len: u64,
    },
}

/// A framed form: its segments, exact length and content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    framing: Vec<u8>,
    segments: Vec<Segment>,
    content_length: u64,
    content_type: String,
}

impl Body {
    fn frame(form: &Form, boundary: &str) -> Body {
        let mut framing = Vec::with_capacity(128 + 96 * (form.fields.len() + form.files.len()));
        let mut segments = Vec::with_capacity(2 * form.files.len() + 1);
        let mut file_bytes = 0u64;
        let mut start = 0;
        let delimiter = |framing: &mut Vec<u8>, first: bool| {
            if !first {
                framing.extend_from_slice(b"\r\n");
            }
            framing.extend_from_slice(b"--");
            framing.extend_from_slice(boundary.as_bytes());
        };
        let mut first = true;
        for (name, value) in &form.fields {
            delimiter(&mut framing, first);
            first = false;
            framing.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
            push_escaped(&mut framing, name);
            framing.extend_from_slice(b"\"\r\n\r\n");
            framing.extend_from_slice(value.as_bytes());
        }
        for (index, part) in form.files.iter().enumerate() {
            delimiter(&mut framing, first);
            first = false;
            framing.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
            push_escaped(&mut framing, &part.name);
            framing.extend_from_slice(b"\"; filename=\"");
            push_escaped(&mut framing, &part.filename);
            framing.extend_from_slice(b"\"\r\nContent-Type: ");
            framing.extend_from_slice(part.content_type.as_bytes());
            framing.extend_from_slice(b"\r\n\r\n");
            if part.len > 0 {
                segments.push(Segment::Bytes(start..framing.len()));
                segments.push(Segment::File {
                    part: index,
                    len: part.len,
                });
                start = framing.len();
                file_bytes += part.len;
            }
        }
        delimiter(&mut framing, first);
        framing.extend_from_slice(b"--\r\n");
        segments.push(Segment::Bytes(start..framing.len()));
        framing.shrink_to_fit();
        let content_type = format!("multipart/form-data; boundary={boundary}");
        Body {
            content_length: framing.len() as u64 + file_bytes,
            framing,
            segments,
            content_type,
        }
    }

    /// A raw body: `len` bytes of file part 0, no framing (a `PUT` of a
    /// file). Its content type is `content_type` (may be empty: none).
    ///
    /// ```
    /// use uploadtask_multipart::{Body, Chunk};
    ///
    /// let body = Body::raw(3, "");
    /// assert_eq!(body.content_length(), 3);
    /// assert_eq!(body.chunk(&body.cursor()), Some(Chunk::File { part: 0, offset: 0, len: 3 }));
    /// ```
    pub fn raw(len: u64, content_type: impl Into<String>) -> Body {
        Body {
            framing: Vec::new(),
            segments: if len > 0 {
                vec![Segment::File { part: 0, len }]
            } else {
                Vec::new()
            },
            content_length: len,
            content_type: content_type.into(),
        }
    }

    /// Exact body length in bytes: the request's Content-Length.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// `multipart/form-data; boundary=…`, the request's Content-Type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        // NOTE(unwrap): content_type was built as "…boundary=" + boundary.
        self.content_type.split_once("boundary=").map_or("", |(_, b)| b)
    }

    /// The body's segments in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// A cursor at the start of the body.
    pub fn cursor(&self) -> Cursor {
        Cursor::default()
    }

    /// What to send at `cursor`, or `None` when the body is done.
    pub fn chunk(&self, cursor: &Cursor) -> Option<Chunk<'_>> {
        match self.segments.get(cursor.segment)? {
            Segment::Bytes(range) => {
                // NOTE(unwrap): offsets inside a bytes segment fit usize.
                let offset = usize::try_from(cursor.offset).unwrap_or(usize::MAX);
                Some(Chunk::Bytes(self.framing.get(range.start + offset..range.end)?))
            }
            &Segment::File { part, len } => Some(Chunk::File {
                part,
                offset: cursor.offset,
                len: len - cursor.offset,
            }),
        }
    }

    fn segment_len(&self, index: usize) -> u64 {
        match &self.segments[index] {
            Segment::Bytes(range) => range.len() as u64,
            Segment::File { len, .. } => *len,
        }
    }
}

/// A position in a [`Body`]; resumable at any byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    segment: usize,
    offset: u64,
    done: u64,
}

impl Cursor {
    /// Moves forward by `sent` bytes (what the transport accepted). Moving
    /// past the end stops at the end.
    pub fn advance(&mut self, body: &Body, mut sent: u64) {
        while sent > 0 && self.segment < body.segments.len() {
            let left = body.segment_len(self.segment) - self.offset;
            let step = left.min(sent);
            self.offset += step;
            self.done += step;
            sent -= step;
            if self.offset == body.segment_len(self.segment) {
                self.segment += 1;
                self.offset = 0;
            }
        }
    }

    /// Body bytes passed so far.
    pub fn body_bytes_done(&self) -> u64 {
        self.done
    }

    /// True at the end of `body`.
    pub fn is_done(&self, body: &Body) -> bool {
        self.segment >= body.segments.len()
    }
}

/// Appends `text` with `"`, CR and LF percent-encoded, as browsers do.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"%22"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests;
