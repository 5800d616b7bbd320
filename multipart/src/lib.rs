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

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

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
/// The bytes themselves stay in the file. The names are shared strings, so
/// that a caller sending many parts of one name copies none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// Form field name.
    pub name: Arc<str>,
    /// Filename sent in `Content-Disposition`.
    pub filename: Arc<str>,
    /// `Content-Type` of the part (a guessed type is borrowed, not allocated).
    pub content_type: Cow<'static, str>,
    /// Exact number of file bytes.
    pub len: u64,
}

impl FilePart {
    /// A part named `name` for `filename` (its basename is used) of `len`
    /// bytes; the content type is guessed from the extension, else
    /// `application/octet-stream`.
    pub fn new(name: impl Into<Arc<str>>, filename: impl Into<Arc<str>>, len: u64) -> Self {
        let filename = filename.into();
        let base = basename(&filename);
        let filename = if base.len() == filename.len() {
            filename
        } else {
            Arc::from(base)
        };
        FilePart {
            name: name.into(),
            content_type: Cow::Borrowed(guess_type(&filename)),
            filename,
            len,
        }
    }

    /// Replaces the guessed content type.
    pub fn content_type(mut self, content_type: impl Into<Cow<'static, str>>) -> Self {
        self.content_type = content_type.into();
        self
    }
}

/// The content type for `filename`'s extension, else
/// `application/octet-stream`. The last extension's answer is kept: a batch
/// or a load run sends one kind of file, and the table lookup is not free.
fn guess_type(filename: &str) -> &'static str {
    thread_local! {
        static LAST: std::cell::RefCell<(String, &'static str)> = const { std::cell::RefCell::new((String::new(), "")) };
    }
    // As `Path::extension`: a name's leading dot does not start one.
    let extension = match filename.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => extension,
        _ => return "application/octet-stream",
    };
    if extension.len() > 16 {
        // Looked up, not kept: the kept extension stays small.
        return mime_guess::from_ext(extension)
            .first_raw()
            .unwrap_or("application/octet-stream");
    }
    LAST.with_borrow_mut(|(last, guessed)| {
        if last.as_str() != extension || guessed.is_empty() {
            *guessed = mime_guess::from_ext(extension)
                .first_raw()
                .unwrap_or("application/octet-stream");
            last.clear();
            last.push_str(extension);
        }
        *guessed
    })
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
        self.add_text(name, value);
        self
    }

    /// Adds a file part; file parts follow all text fields on the wire.
    pub fn file(mut self, part: FilePart) -> Self {
        self.add_file(part);
        self
    }

    /// [`Form::text`] on a form kept for reuse.
    pub fn add_text(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// [`Form::file`] on a form kept for reuse.
    pub fn add_file(&mut self, part: FilePart) {
        self.files.push(part);
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
    pub fn build_with_entropy(mut self, entropy: &mut dyn FnMut(&mut [u8; 16]) -> bool) -> Result<Body, FormError> {
        self.frame(Spare::default(), entropy)
    }

    /// Frames the form into `spare`'s storage (when it fits) and empties the
    /// form, keeping its storage, for the next one. An engine that keeps one
    /// `Form` and the [`Spare`]s of ended bodies frames without allocating.
    ///
    /// ```
    /// use uploadtask_multipart::{FilePart, Form, Spare};
    ///
    /// let mut form = Form::new().file(FilePart::new("f", "a.txt", 3));
    /// let first = form.frame(Spare::default(), &mut |b| { b.fill(7); true }).unwrap();
    /// form = form.file(FilePart::new("f", "b.txt", 3));
    /// let second = form.frame(first.into_spare(), &mut |b| { b.fill(8); true }).unwrap();
    /// let fresh = Form::new().file(FilePart::new("f", "b.txt", 3));
    /// assert_eq!(second, fresh.build_with_entropy(&mut |b| { b.fill(8); true }).unwrap());
    /// ```
    pub fn frame(&mut self, spare: Spare, entropy: &mut dyn FnMut(&mut [u8; 16]) -> bool) -> Result<Body, FormError> {
        let body = self.frame_checked(spare, entropy);
        self.clear();
        body
    }

    /// Removes every field and part and the boundary, keeping the storage.
    pub fn clear(&mut self) {
        self.fields.clear();
        self.files.clear();
        self.boundary = None;
    }

    fn frame_checked(&self, spare: Spare, entropy: &mut dyn FnMut(&mut [u8; 16]) -> bool) -> Result<Body, FormError> {
        for part in &self.files {
            if part.content_type.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(FormError::InvalidContentType(part.content_type.to_string()));
            }
        }
        let mut random = [0u8; RANDOM_BOUNDARY_LEN];
        let boundary = match &self.boundary {
            Some(b) if !is_valid_boundary(b) => return Err(FormError::InvalidBoundary),
            Some(b) if self.text_contains(b) => return Err(FormError::BoundaryInText),
            Some(b) => b.as_str(),
            None => self.random_boundary(entropy, &mut random)?,
        };
        Ok(Body::frame(self, boundary, spare))
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
        let fields = self.fields.iter().flat_map(|(n, v)| [n.as_str(), v.as_str()]);
        let files = self
            .files
            .iter()
            .flat_map(|f| [&*f.name, &*f.filename, &*f.content_type]);
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
    /// The content type, then the framing (all of it text: names are
    /// escaped strings, values strings, the boundary ASCII), in one
    /// allocation of the exact size.
    text: String,
    /// Where the framing starts in `text`.
    framing_at: usize,
    segments: Vec<Segment>,
    content_length: u64,
}

const MULTIPART_TYPE: &str = "multipart/form-data; boundary=";

impl Body {
    /// Frames `form` in two passes over one layout: the first counts the
    /// bytes, the second writes them into a buffer of that size.
    fn frame(form: &Form, boundary: &str, spare: Spare) -> Body {
        let mut count = Count(0);
        layout(form, boundary, &mut count, |_, _, _| {});
        let framing_at = MULTIPART_TYPE.len() + boundary.len();
        let (mut text, mut segments) = (spare.text, spare.segments);
        text.clear();
        segments.clear();
        let needed = framing_at + count.0;
        if !fits(text.capacity(), needed) {
            text = String::with_capacity(needed);
        }
        text.push_str(MULTIPART_TYPE);
        text.push_str(boundary);
        let needed = 2 * form.files.iter().filter(|part| part.len > 0).count() + 1;
        if !fits(segments.capacity(), needed) {
            segments = Vec::with_capacity(needed);
        }
        let (mut start, mut file_bytes) = (0, 0u64);
        let mut out = Framing {
            text: &mut text,
            at: framing_at,
        };
        layout(form, boundary, &mut out, |part, at, len| {
            segments.push(Segment::Bytes(start..at));
            segments.push(Segment::File { part, len });
            start = at;
            file_bytes += len;
        });
        let end = out.len();
        segments.push(Segment::Bytes(start..end));
        Body {
            content_length: end as u64 + file_bytes,
            text,
            framing_at,
            segments,
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
        let text = content_type.into();
        Body {
            framing_at: text.len(),
            text,
            segments: if len > 0 {
                vec![Segment::File { part: 0, len }]
            } else {
                Vec::new()
            },
            content_length: len,
        }
    }

    /// The body's storage, for [`Form::frame`] to reuse.
    pub fn into_spare(self) -> Spare {
        Spare {
            text: self.text,
            segments: self.segments,
        }
    }

    /// Exact body length in bytes: the request's Content-Length.
    pub fn content_length(&self) -> u64 {
        self.content_length
    }

    /// `multipart/form-data; boundary=…`, the request's Content-Type.
    pub fn content_type(&self) -> &str {
        self.text.get(..self.framing_at).unwrap_or("")
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        self.content_type().split_once("boundary=").map_or("", |(_, b)| b)
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
                let framing = &self.text.as_bytes()[self.framing_at..];
                Some(Chunk::Bytes(
                    framing.get(range.start.saturating_add(offset)..range.end)?,
                ))
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
/// The storage of a [`Body`] no longer needed ([`Body::into_spare`]), for
/// [`Form::frame`] to frame the next one in.
#[derive(Debug, Default)]
pub struct Spare {
    text: String,
    segments: Vec<Segment>,
}

impl Spare {
    /// Bytes of storage it holds.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.segments.capacity() * std::mem::size_of::<Segment>()
    }
}

/// True when storage of `capacity` holds `needed` and not much more (a body
/// keeps its storage while in flight).
fn fits(capacity: usize, needed: usize) -> bool {
    (needed..=2 * needed + 256).contains(&capacity)
}

/// Where [`layout`] writes: the body's text, or only a count of its bytes.
trait Out {
    fn put(&mut self, text: &str);
    /// Framing bytes written so far.
    fn len(&self) -> usize;
}

struct Count(usize);

impl Out for Count {
    fn put(&mut self, text: &str) {
        self.0 += text.len();
    }
    fn len(&self) -> usize {
        self.0
    }
}

/// The body's text, whose framing starts at `at`.
struct Framing<'a> {
    text: &'a mut String,
    at: usize,
}

impl Out for Framing<'_> {
    fn put(&mut self, text: &str) {
        self.text.push_str(text);
    }
    fn len(&self) -> usize {
        self.text.len() - self.at
    }
}

/// The framing of `form`, in order. `file(part, at, len)` says that file
/// part `part`'s `len` bytes go at framing offset `at` (parts of 0 bytes
/// are not mentioned).
fn layout<O: Out>(form: &Form, boundary: &str, out: &mut O, mut file: impl FnMut(usize, usize, u64)) {
    let mut first = true;
    let mut delimiter = |out: &mut dyn Out| {
        if !std::mem::take(&mut first) {
            out.put("\r\n");
        }
        out.put("--");
        out.put(boundary);
    };
    for (name, value) in &form.fields {
        delimiter(out);
        out.put("\r\nContent-Disposition: form-data; name=\"");
        put_escaped(out, name);
        out.put("\"\r\n\r\n");
        out.put(value);
    }
    for (index, part) in form.files.iter().enumerate() {
        delimiter(out);
        out.put("\r\nContent-Disposition: form-data; name=\"");
        put_escaped(out, &part.name);
        out.put("\"; filename=\"");
        put_escaped(out, &part.filename);
        out.put("\"\r\nContent-Type: ");
        out.put(&part.content_type);
        out.put("\r\n\r\n");
        if part.len > 0 {
            file(index, out.len(), part.len);
        }
    }
    delimiter(out);
    out.put("--\r\n");
}

/// `text` with `"`, CR and LF percent-encoded, as browsers do in names.
fn put_escaped(out: &mut impl Out, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['"', '\r', '\n']) {
        out.put(&rest[..at]);
        out.put(match rest.as_bytes()[at] {
            b'"' => "%22",
            b'\r' => "%0D",
            _ => "%0A",
        });
        rest = &rest[at + 1..];
    }
    out.put(rest);
}

#[cfg(test)]
mod tests;
