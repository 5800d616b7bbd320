//! A response's header fields, kept in one buffer.
//!
//! A response head with ten fields would cost twenty-one allocations as a
//! `Vec` of owned names and values; [`Headers`] costs one (none when there
//! are no fields). Each field is stored as its name's length and its value's
//! length (`u32`, little-endian), then the name, then the value.

use std::fmt;

/// Header fields in the order received, duplicates kept.
///
/// ```
/// use uploadtask_http1::Headers;
///
/// let headers: Headers = [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
///     .into_iter()
///     .collect();
/// assert_eq!(headers.len(), 3);
/// assert_eq!(headers.get("content-type"), Some(&b"text/plain"[..]));
/// assert_eq!(headers.values("Set-Cookie").collect::<Vec<_>>(), [&b"a=1"[..], &b"b=2"[..]]);
/// let names: Vec<&str> = headers.iter().map(|h| h.name).collect();
/// assert_eq!(names, ["Content-Type", "Set-Cookie", "set-cookie"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    buf: Vec<u8>,
    len: usize,
}

/// One header field, borrowed from its [`Headers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The name, as the server spelled it.
    pub name: &'a str,
    /// The value, raw bytes without surrounding whitespace.
    pub value: &'a [u8],
}

const LENGTHS: usize = 8;

impl Headers {
    /// No fields (allocates nothing).
    pub const fn new() -> Self {
        Headers {
            buf: Vec::new(),
            len: 0,
        }
    }

    /// Room for fields of `bytes` name and value bytes in all, `fields` of them.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Headers {
            buf: Vec::with_capacity(bytes + LENGTHS * fields),
            len: 0,
        }
    }

    /// Adds a field at the end. A name or value longer than `u32::MAX` bytes
    /// (never within a head's limits) is cut there.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let name = cut_str(name);
        let value = &value[..value.len().min(u32::MAX as usize)];
        self.buf.extend_from_slice(&(name.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(value);
        self.len += 1;
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every field, in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            raw: Raw { rest: &self.buf },
        }
    }

    /// Values of every field called `name` (case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        Raw { rest: &self.buf }
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// The first value of the field called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        Raw { rest: &self.buf }
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }
}

/// The longest prefix of `s` within `u32::MAX` bytes that ends on a character.
fn cut_str(s: &str) -> &str {
    let mut end = s.len().min(u32::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The fields of a [`Headers`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    raw: Raw<'a>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        let (name, value) = self.raw.next()?;
        // Only `push` writes the buffer, from a `&str`.
        let name = std::str::from_utf8(name).ok()?;
        Some(Header { name, value })
    }
}

/// Names and values as bytes: lookups by name skip checking each name's
/// UTF-8.
#[derive(Debug, Clone)]
struct Raw<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Raw<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (lengths, rest) = self.rest.split_first_chunk::<LENGTHS>()?;
        let [n0, n1, n2, n3, v0, v1, v2, v3] = *lengths;
        let name_len = u32::from_le_bytes([n0, n1, n2, n3]) as usize;
        let value_len = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
        let (name, rest) = rest.split_at_checked(name_len)?;
        let (value, rest) = rest.split_at_checked(value_len)?;
        self.rest = rest;
        Some((name, value))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.push(name.as_ref(), value.as_ref());
        }
        headers
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|h| (h.name, String::from_utf8_lossy(h.value))))
            .finish()
    }
}

/// True for the bytes RFC 9110 allows in a token (header names, methods).
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_in_order_with_empty_names_and_values() {
        let mut headers = Headers::new();
        assert!(headers.is_empty() && headers.iter().next().is_none());
        headers.push("A", b"");
        headers.push("", b"v");
        headers.push("b", b"\xff\x00");
        let all: Vec<(&str, &[u8])> = headers.iter().map(|h| (h.name, h.value)).collect();
        assert_eq!(all, [("A", &b""[..]), ("", &b"v"[..]), ("b", &b"\xff\x00"[..])]);
        assert_eq!(headers.len(), 3);
        assert_eq!(headers.get("B"), Some(&b"\xff\x00"[..]));
        assert_eq!(headers.get("c"), None);
        assert_eq!(
            format!("{headers:?}"),
            "{\"A\": \"\", \"\": \"v\", \"b\": \"\u{fffd}\\0\"}"
        );
    }

    #[test]
    fn one_allocation_holds_every_field() {
        let mut headers = Headers::with_capacity(2, 8);
        let before = headers.buf.as_ptr();
        headers.push("ab", b"cd");
        headers.push("ef", b"gh");
        assert_eq!(headers.buf.as_ptr(), before);
    }
}
