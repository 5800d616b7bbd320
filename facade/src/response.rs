//! What a task reports: [`ProgressUpdate`] and [`UploadResponse`], with the
//! documented serialized names.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// One progress event (`onProgressUpdate`'s argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressUpdate {
    /// Percent, `floor(total_bytes_sent * 100 / total_bytes_expected_to_send)`.
    pub progress: u8,
    /// Body bytes accepted by the kernel (on TLS: whose records are on the wire).
    pub total_bytes_sent: u64,
    /// Exact request body length.
    pub total_bytes_expected_to_send: u64,
}

impl From<uploadtask_engine::Progress> for ProgressUpdate {
    fn from(p: uploadtask_engine::Progress) -> Self {
        ProgressUpdate {
            progress: p.progress,
            total_bytes_sent: p.total_bytes_sent,
            total_bytes_expected_to_send: p.total_bytes_expected_to_send,
        }
    }
}

/// The final response's head (`onHeadersReceived`'s argument): serialized
/// as `{"statusCode": 200, "header": {…}}` (`header`, as hapjs and wx name
/// it; duplicates joined with `, `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersReceived {
    /// The status code.
    pub status_code: u16,
    /// Every header in order, duplicates kept.
    pub header_list: Vec<(String, String)>,
}

impl HeadersReceived {
    pub(crate) fn from_engine(status: u16, headers: &uploadtask_engine::Headers) -> Self {
        HeadersReceived {
            status_code: status,
            header_list: text_headers(headers),
        }
    }

    /// The headers as an object: see [`UploadResponse::headers`].
    pub fn headers(&self) -> Vec<(String, String)> {
        join_headers(&self.header_list)
    }
}

impl Serialize for HeadersReceived {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let headers = self.headers();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("statusCode", &self.status_code)?;
        map.serialize_entry("header", &HeaderObject(&headers))?;
        map.end()
    }
}

fn text_headers(headers: &uploadtask_engine::Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
        .collect()
}

/// Names in order of first appearance, values of duplicates joined with `, `.
fn join_headers(list: &[(String, String)]) -> Vec<(String, String)> {
    let mut joined: Vec<(String, String)> = Vec::with_capacity(list.len());
    for (name, value) in list {
        match joined.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => joined.push((name.clone(), value.clone())),
        }
    }
    joined
}

/// The server's response (`success`'s argument). Every HTTP status is a
/// success; `status_code` tells.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadResponse {
    /// `statusCode`.
    pub status_code: u16,
    /// `data`: the body as UTF-8 text, invalid sequences replaced, one
    /// leading BOM dropped.
    pub data: String,
    /// The body's raw bytes.
    pub raw: Vec<u8>,
    /// Every header in order, duplicates kept (values decoded as UTF-8 with
    /// replacement).
    pub header_list: Vec<(String, String)>,
    /// What carried the response (`HTTP/1.1`, `HTTP/2`, `HTTP/1.0`); not
    /// in the documented object (its serialization), which stays as the
    /// API page gives it.
    pub protocol: &'static str,
}

/// Shows the body as text (at most 256 characters), never the raw bytes.
impl std::fmt::Debug for UploadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: String = self.data.chars().take(256).collect();
        let cut = if shown.len() < self.data.len() { "…" } else { "" };
        f.debug_struct("UploadResponse")
            .field("status_code", &self.status_code)
            .field("data", &format_args!("{shown:?}{cut}"))
            .field("raw", &format_args!("{} bytes", self.raw.len()))
            .field("header_list", &self.header_list)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl UploadResponse {
    pub(crate) fn from_engine(response: uploadtask_engine::Response) -> Self {
        let text = String::from_utf8_lossy(&response.body);
        let data = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
        let header_list = text_headers(&response.headers);
        let protocol = match response.version {
            0 => "HTTP/1.0",
            2 => "HTTP/2",
            _ => "HTTP/1.1",
        };
        UploadResponse {
            status_code: response.status,
            data,
            raw: response.body,
            header_list,
            protocol,
        }
    }

    /// `headers` as an object: names in order of first appearance, values
    /// of duplicates joined with `, `.
    pub fn headers(&self) -> Vec<(String, String)> {
        join_headers(&self.header_list)
    }

    /// The joined value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

struct HeaderObject<'a>(&'a [(String, String)]);

impl Serialize for HeaderObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Serialize for UploadResponse {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let headers = self.headers();
        // The documented object, exactly (`protocol` is Rust's only).
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("statusCode", &self.status_code)?;
        map.serialize_entry("data", &self.data)?;
        map.serialize_entry("headers", &HeaderObject(&headers))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uploadtask_engine::Response;

    #[test]
    fn data_drops_one_bom_and_replaces_invalid_bytes_headers_join() {
        let response = UploadResponse::from_engine(Response {
            status: 201,
            reason: "Created".into(),
            version: 1,
            headers: [("Set-Cookie", "a=1"), ("X-One", "1"), ("set-cookie", "b=2")]
                .into_iter()
                .collect(),
            body: b"\xef\xbb\xbf\xef\xbb\xbfok\xff".to_vec(),
        });
        assert_eq!(response.data, "\u{feff}ok\u{fffd}");
        let debug = format!("{response:?}");
        assert!(debug.contains("raw: 9 bytes") && !debug.contains("239"), "{debug}");
        assert_eq!(response.header("SET-COOKIE").as_deref(), Some("a=1, b=2"));
        let json = serde_json::to_string(&response).unwrap();
        assert_eq!(
            json,
            r#"{"statusCode":201,"data":"﻿ok�","headers":{"Set-Cookie":"a=1, b=2","X-One":"1"}}"#
        );
    }
}
