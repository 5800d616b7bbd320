//! Heads on an HTTP/2 stream, without I/O: a request's fields taken from
//! the HTTP/1.1 head the engine built (one request builder serves both
//! versions), a response's fields as [`Headers`], and both as `-v` shows
//! them (`POST /up HTTP/2`, `HTTP/2 200`, then `name: value` lines).
//!
//! ```text
//!   "POST /up HTTP/1.1\r\nHost: a:1\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"
//!     ─► :method POST, :scheme https, :authority a:1, :path /up, content-length 3
//! ```

use uploadtask_http1::Headers;
use uploadtask_http2::message::{request_fields, MessageError, Request};
use uploadtask_http2::Fields;

/// The fields of the request whose HTTP/1.1 head is `head` (the engine's
/// own, so well formed), sent over `scheme`; and the head as `-v` shows
/// it. Connection-specific headers are dropped (RFC 9113 §8.2.2).
pub fn request(head: &[u8], scheme: &str) -> Result<(Fields, Vec<u8>), MessageError> {
    let text = std::str::from_utf8(head).map_err(|_| MessageError::BadField("a header that is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(' ');
    let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let headers: Vec<(&str, &str)> = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name, value.trim()))
        .collect();
    let fields = request_fields(&Request {
        method,
        scheme,
        authority: "",
        path,
        headers: &headers,
    })?;
    let mut trace = format!("{method} {path} HTTP/2\r\n").into_bytes();
    for (name, value) in &fields {
        let name = match name.as_slice() {
            b":authority" => b"host".as_slice(),
            name if name.starts_with(b":") => continue,
            name => name,
        };
        push_line(&mut trace, name, value);
    }
    trace.extend_from_slice(b"\r\n");
    Ok((fields, trace))
}

/// A response head's fields as headers (in order, duplicates kept), and
/// the head as `-v` shows it.
pub fn response(status: u16, fields: &Fields) -> (Headers, Vec<u8>) {
    let bytes: usize = fields.iter().map(|(n, v)| n.len() + v.len()).sum();
    let mut headers = Headers::with_capacity(fields.len(), bytes);
    let mut trace = format!("HTTP/2 {status}\r\n").into_bytes();
    for (name, value) in fields {
        headers.push(&String::from_utf8_lossy(name), value);
        push_line(&mut trace, name, value);
    }
    trace.extend_from_slice(b"\r\n");
    (headers, trace)
}

fn push_line(trace: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    trace.extend_from_slice(name);
    trace.extend_from_slice(b": ");
    trace.extend_from_slice(value);
    trace.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_becomes_fields_without_connection_headers() {
        let head = b"PUT /up?x=1 HTTP/1.1\r\nHost: example.com:8443\r\nContent-Length: 3\r\n\
            Connection: keep-alive\r\nX-Tag: a:b\r\n\r\n";
        let (fields, trace) = request(head, "https").unwrap();
        let pairs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        assert_eq!(
            pairs,
            [
                (&b":method"[..], &b"PUT"[..]),
                (b":scheme", b"https"),
                (b":authority", b"example.com:8443"),
                (b":path", b"/up?x=1"),
                (b"content-length", b"3"),
                (b"x-tag", b"a:b"),
            ]
        );
        assert_eq!(
            trace,
            b"PUT /up?x=1 HTTP/2\r\nhost: example.com:8443\r\ncontent-length: 3\r\nx-tag: a:b\r\n\r\n"
        );
    }

    #[test]
    fn response_fields_become_headers_in_order() {
        let fields = vec![
            (b"set-cookie".to_vec(), b"a=1".to_vec()),
            (b"set-cookie".to_vec(), b"b=2".to_vec()),
        ];
        let (headers, trace) = response(201, &fields);
        assert_eq!(headers.values("Set-Cookie").collect::<Vec<_>>(), [b"a=1", b"b=2"]);
        assert_eq!(trace, b"HTTP/2 201\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\r\n");
    }
}
