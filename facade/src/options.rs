//! [`UploadOptions`]: the documented `uploadFile` object, with builder
//! methods, and deserializable from the documented shape so a JS bridge can
//! pass an object straight through.
//!
//! ```
//! let options: uploadtask::UploadOptions = serde_json::from_str(r#"{
//!     "url": "http://127.0.0.1:8080/up",
//!     "filePath": "internal://mass/download/test.png",
//!     "name": "testImg",
//!     "header": {"X-Token": "t"},
//!     "formData": {"user": "42", "age": 7},
//!     "timeout": 5000
//! }"#).unwrap();
//! assert_eq!(options.form_data, [("user".to_string(), "42".to_string()), ("age".to_string(), "7".to_string())]);
//! assert_eq!(options.timeout, Some(std::time::Duration::from_millis(5000)));
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::response::{HeadersReceived, ProgressUpdate, UploadResponse};

/// `success(res)`.
pub type SuccessCallback = Box<dyn FnOnce(&UploadResponse) + Send>;
/// `fail(data, code)`.
pub type FailCallback = Box<dyn FnOnce(&str, u32) + Send>;
/// `complete()`.
pub type CompleteCallback = Box<dyn FnOnce() + Send>;
/// An `onProgressUpdate` listener.
pub type ProgressCallback = std::sync::Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;
/// Called with each request head as it went out (a `-v` trace).
pub type RequestHeadCallback = std::sync::Arc<dyn Fn(&[u8]) + Send + Sync>;
/// An `onHeadersReceived` listener.
pub type HeadersCallback = std::sync::Arc<dyn Fn(&HeadersReceived) + Send + Sync>;

/// The argument of `uploadFile`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadOptions {
    /// `url`: the server endpoint, `http` or `https`.
    pub url: String,
    /// `filePath`: `internal://…`, or (outside sandbox mode) a path or `file://` URL.
    /// Missing or empty: a 202 through `fail`, unless `files` carries the parts.
    #[serde(default)]
    pub file_path: String,
    /// `name`: the form field of the file.
    #[serde(default)]
    pub name: String,
    /// `header`: request headers, in order.
    #[serde(default, deserialize_with = "ordered_text_pairs")]
    pub header: Vec<(String, String)>,
    /// `formData`: text fields, in order.
    #[serde(default, deserialize_with = "ordered_text_pairs")]
    pub form_data: Vec<(String, String)>,
    /// `timeout` (ms in the object form): overall deadline.
    #[serde(default, deserialize_with = "millis")]
    pub timeout: Option<Duration>,
    /// `files`: more file parts in the same request, after `filePath`'s (as
    /// hapjs' and uni-app's `files`). With `files`, `filePath` and `name`
    /// may be left out.
    #[serde(default)]
    pub files: Vec<FileEntry>,
    /// `method`: `POST` when not given; any token (`PUT`, `PATCH`, …).
    #[serde(default)]
    pub method: Option<String>,
    /// `raw`: send `filePath`'s bytes as the whole body (no form), with its
    /// exact `Content-Length` and the `Content-Type` header given in
    /// `header`, if any (an S3/GCS signed `PUT`). No `formData` or `files`
    /// then.
    #[serde(default)]
    pub raw: bool,
    /// `retry`: send again after a failure worth it (connect failures,
    /// resets, an attempt's timeouts, 408/429/502/503/504), with backoff:
    /// `{"attempts": 3, "baseDelay": 250, "maxDelay": 30000, "maxTime": 60000,
    /// "statuses": [503]}` (ms; all but `attempts` optional). The overall
    /// `timeout` bounds all attempts together.
    #[serde(default)]
    pub retry: Option<RetryOptions>,
    /// `maxRedirects`: redirects followed (default: the engine's, 10; 0
    /// follows none and a 3xx is the response).
    #[serde(default)]
    pub max_redirects: Option<u32>,
    /// `resumable`: `"tus"` (tus 1.0.0) or `"ietf"` (draft-ietf-httpbis-
    /// resumable-upload-12, interop version 8) sends `filePath` as a
    /// resumable upload; `url` is then the endpoint that creates upload
    /// resources. After a failure it goes on from the server's offset (with
    /// `retry`, or 5 attempts without progress); after a restart, from the
    /// client's [`crate::resume::ResumeStore`]. `formData` becomes tus
    /// `Upload-Metadata` (with `filename` and `filetype`); ietf takes none.
    #[serde(default)]
    pub resumable: Option<ResumableProtocol>,
    /// `chunkSize`: most bytes per request of a resumable upload (default:
    /// all that remain in one request).
    #[serde(default)]
    pub chunk_size: Option<u64>,
    /// `checksum`: tus checksum extension, `Upload-Checksum: sha1 …` on each
    /// append (a 460 sends the piece again).
    #[serde(default)]
    pub checksum: bool,
    /// `creationWithUpload`: tus creation-with-upload, the first piece on
    /// the creating `POST`.
    #[serde(default)]
    pub creation_with_upload: bool,
    /// `terminateOnAbort`: `abort()` also deletes the upload resource
    /// (tus termination, ietf cancellation); by default it stays, to resume.
    #[serde(default)]
    pub terminate_on_abort: bool,
    /// `progressAcked`: `totalBytesSent` counts body bytes the server's TCP
    /// acknowledged (Linux; asked every 100 ms), not those the kernel
    /// accepted; 100% only once all were acknowledged. Default off.
    #[serde(default)]
    pub progress_acked: bool,
    /// `resendOnReuse`: a request that failed on a reused connection before
    /// any response byte is sent again once on a new connection, as
    /// browsers and curl do (the server may then get it twice, if it read
    /// all of it and died without a word). `false` asks for at most once:
    /// such a request fails instead. The client's setting when absent
    /// (on by default).
    #[serde(default)]
    pub resend_on_reuse: Option<bool>,
    /// `http`: the HTTP version, as curl chooses it: `"auto"` (HTTP/2
    /// where TLS negotiates it, else HTTP/1.1), `"1.1"`, `"2"` (as auto),
    /// `"2-prior-knowledge"` (HTTP/2 on plain `http://` too). The client's
    /// setting when absent (auto by default).
    #[serde(default)]
    pub http: Option<HttpOption>,
    /// `s3`: settings of an S3 multipart upload, for a `url` of the form
    /// `s3://BUCKET/KEY` (which alone starts one, with the defaults):
    /// `filePath` goes to that object in parts, several at once.
    #[serde(default)]
    pub s3: Option<S3Options>,
    #[serde(skip)]
    pub(crate) success: Option<SuccessCallback>,
    #[serde(skip)]
    pub(crate) fail: Option<FailCallback>,
    #[serde(skip)]
    pub(crate) complete: Option<CompleteCallback>,
    #[serde(skip)]
    pub(crate) listeners: Vec<ProgressCallback>,
    #[serde(skip)]
    pub(crate) head_listeners: Vec<HeadersCallback>,
    #[serde(skip)]
    pub(crate) request_head: Option<RequestHeadCallback>,
    #[serde(skip)]
    pub(crate) response_head: Option<RequestHeadCallback>,
    /// With `raw`: these bytes are the body instead of `filePath`'s
    /// (`filePath` then only names them). Shared without copies.
    #[serde(skip)]
    pub body_bytes: Option<bytes::Bytes>,
}

/// The `s3` option: where the object goes, how it is cut and sent, and
/// the credentials. Keys absent here come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
///
/// ```
/// let options: uploadtask::UploadOptions = serde_json::from_str(
///     r#"{"url": "s3://bucket/photos/a.jpg", "filePath": "a.jpg",
///         "s3": {"endpoint": "http://127.0.0.1:9000", "parallel": 6, "partSize": 16777216}}"#,
/// ).unwrap();
/// assert_eq!(options.s3.unwrap().parallel, Some(6));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Options {
    /// An S3-compatible store's endpoint (path-style addressing); AWS
    /// (`https://BUCKET.s3.REGION.amazonaws.com`) when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The signing region; `AWS_REGION`, else `us-east-1`, when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// Parts in flight at once (default 4).
    #[serde(default)]
    pub parallel: Option<usize>,
    /// Bytes per part, 5 MiB to 5 GiB (default 8 MiB, more for files
    /// above 78 GiB).
    #[serde(default)]
    pub part_size: Option<u64>,
    /// `accessKeyId`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `secretAccessKey`.
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// `sessionToken`.
    #[serde(default)]
    pub session_token: Option<String>,
    /// Send no credentials (a store that checks none).
    #[serde(default)]
    pub anonymous: bool,
    /// No keys on the device: each request's URL is asked of this server
    /// (`GET presignUrl?method=M&uploadId=…&partNumber=…`, answered with
    /// the URL as text or JSON `{"url": …}`), which holds them. The
    /// request's `header` goes with each question (a session token).
    #[serde(default)]
    pub presign_url: Option<String>,
}

/// The `http` option's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpOption {
    /// `"auto"`.
    #[serde(rename = "auto")]
    Auto,
    /// `"1.1"`.
    #[serde(rename = "1.1")]
    Http1,
    /// `"2"`.
    #[serde(rename = "2")]
    Http2,
    /// `"2-prior-knowledge"`.
    #[serde(rename = "2-prior-knowledge")]
    Http2PriorKnowledge,
}

impl HttpOption {
    /// The engine's version for this option.
    pub fn version(self) -> uploadtask_engine::HttpVersion {
        match self {
            HttpOption::Auto => uploadtask_engine::HttpVersion::Auto,
            HttpOption::Http1 => uploadtask_engine::HttpVersion::Http1,
            HttpOption::Http2 => uploadtask_engine::HttpVersion::Http2,
            HttpOption::Http2PriorKnowledge => uploadtask_engine::HttpVersion::Http2PriorKnowledge,
        }
    }
}

/// The protocol of a resumable upload (`"tus"`, `"ietf"` or `"gcs"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumableProtocol {
    /// tus 1.0.0 (tus.io).
    Tus,
    /// draft-ietf-httpbis-resumable-upload-12, interop version 8.
    Ietf,
    /// Google Cloud Storage resumable uploads: `url` is where the session
    /// starts (`https://storage.googleapis.com/BUCKET/KEY` with a signed
    /// URL's query, or the JSON API's `…/upload/storage/v1/b/BUCKET/o?uploadType=resumable&name=KEY`).
    Gcs,
}

/// The `retry` object; see [`UploadOptions::retry`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryOptions {
    /// Retries after the first attempt.
    pub attempts: u32,
    /// The first retry's delay bound (doubles each time); 250 ms if not given.
    #[serde(default, deserialize_with = "millis")]
    pub base_delay: Option<Duration>,
    /// The largest delay, also the bound on `Retry-After`; 30 s if not given.
    #[serde(default, deserialize_with = "millis")]
    pub max_delay: Option<Duration>,
    /// No retry starts later than this after the call.
    #[serde(default, deserialize_with = "millis")]
    pub max_time: Option<Duration>,
    /// Statuses retried; 408, 429, 502, 503, 504 if not given.
    #[serde(default)]
    pub statuses: Option<Vec<u16>>,
}

impl RetryOptions {
    /// The engine's policy for these options.
    pub fn policy(&self) -> uploadtask_engine::retry::RetryPolicy {
        let default = uploadtask_engine::retry::RetryPolicy::default();
        uploadtask_engine::retry::RetryPolicy {
            attempts: self.attempts,
            base_delay: self.base_delay.unwrap_or(default.base_delay),
            max_delay: self.max_delay.unwrap_or(default.max_delay),
            statuses: self.statuses.clone().unwrap_or(default.statuses),
            max_time: self.max_time,
        }
    }
}

/// One entry of `files` (`bytes`, in Rust only, sends bytes in memory under
/// the name `uri`): `{"name": "…", "uri": "internal://…", "type": "…", "filename": "…"}`
/// (`uri` also as `filePath`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FileEntry {
    /// The form field of the part.
    pub name: String,
    /// The file: `internal://…`, or a plain path where allowed.
    #[serde(alias = "filePath")]
    pub uri: String,
    /// The part's Content-Type; guessed from the filename when not given.
    #[serde(rename = "type", default)]
    pub content_type: Option<String>,
    /// The filename sent; the basename of `uri` when not given.
    #[serde(default)]
    pub filename: Option<String>,
    /// Bytes in memory to send instead of the file at `uri` (shared, no copy).
    #[serde(skip)]
    pub bytes: Option<bytes::Bytes>,
}

impl FileEntry {
    /// The file at `uri` as the part `name`.
    pub fn new(name: impl Into<String>, uri: impl Into<String>) -> Self {
        FileEntry {
            name: name.into(),
            uri: uri.into(),
            ..FileEntry::default()
        }
    }

    /// Sets the part's Content-Type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

impl fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadOptions")
            .field("url", &self.url)
            .field("file_path", &self.file_path)
            .field("name", &self.name)
            .field("header", &self.header)
            .field("form_data", &self.form_data)
            .field("timeout", &self.timeout)
            .field("files", &self.files)
            .field("method", &self.method)
            .field("raw", &self.raw)
            .field("max_redirects", &self.max_redirects)
            .field("retry", &self.retry)
            .field("resumable", &self.resumable)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl UploadOptions {
    /// `url`, `filePath` and `name`: the required ones.
    pub fn new(url: impl Into<String>, file_path: impl Into<String>, name: impl Into<String>) -> Self {
        UploadOptions {
            url: url.into(),
            file_path: file_path.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.push((name.into(), value.into()));
        self
    }

    /// Adds a `formData` text field.
    pub fn form_data(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.form_data.push((name.into(), value.into()));
        self
    }

    /// Sets the overall timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a file part (`files`).
    pub fn file(mut self, entry: FileEntry) -> Self {
        self.files.push(entry);
        self
    }

    /// Uses another method than `POST`.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Makes it a resumable upload (see [`UploadOptions::resumable`]) to the
    /// endpoint `url`.
    pub fn resumable(mut self, protocol: ResumableProtocol) -> Self {
        self.resumable = Some(protocol);
        self
    }

    /// Most bytes per request of a resumable upload.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = Some(bytes);
        self
    }

    /// Sends `filePath`'s bytes as the raw body (see [`UploadOptions::raw`]).
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// Sets `success(res)`.
    pub fn success(mut self, callback: impl FnOnce(&UploadResponse) + Send + 'static) -> Self {
        self.success = Some(Box::new(callback));
        self
    }

    /// Sets `fail(data, code)`.
    pub fn fail(mut self, callback: impl FnOnce(&str, u32) + Send + 'static) -> Self {
        self.fail = Some(Box::new(callback));
        self
    }

    /// Sets `complete()`.
    pub fn complete(mut self, callback: impl FnOnce() + Send + 'static) -> Self {
        self.complete = Some(Box::new(callback));
        self
    }

    /// Calls `callback` with each request head as it went out (again after
    /// a redirect), for tracing as curl's `-v` does. An extension, not in the
    /// documented API.
    pub fn on_request_head(mut self, callback: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        self.request_head = Some(std::sync::Arc::new(callback));
        self
    }

    /// Calls `callback` with the bytes of each response head as received:
    /// 1xx interim heads, the heads of redirects followed, and the final
    /// one, for tracing as curl's `-v` does. An extension, not in the
    /// documented API.
    pub fn on_response_head(mut self, callback: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        self.response_head = Some(std::sync::Arc::new(callback));
        self
    }

    /// Registers an `onHeadersReceived` listener before the upload starts
    /// (removable later only with `off_headers_received(None)`).
    pub fn on_headers_received(mut self, callback: impl Fn(&HeadersReceived) + Send + Sync + 'static) -> Self {
        self.head_listeners.push(std::sync::Arc::new(callback));
        self
    }

    /// Registers a progress listener before the upload starts (it can be
    /// removed later only with `off_progress_update(None)`).
    pub fn on_progress_update(mut self, callback: impl Fn(&ProgressUpdate) + Send + Sync + 'static) -> Self {
        self.listeners.push(std::sync::Arc::new(callback));
        self
    }
}

/// An object of text-like values, in the order given; numbers and booleans
/// become their text.
fn ordered_text_pairs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, String)>, D::Error> {
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of text values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some((name, value)) = map.next_entry::<String, TextValue>()? {
                pairs.push((name, value.0));
            }
            Ok(pairs)
        }
    }
    deserializer.deserialize_any(Pairs)
}

struct TextValue(String);

impl<'de> Deserialize<'de> for TextValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = TextValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextValue, E> {
                Ok(TextValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TextValue, E> {
                Ok(TextValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TextValue, E> {
                Ok(TextValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TextValue, E> {
                Ok(TextValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TextValue, E> {
                Ok(TextValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let ms: Option<f64> = Option::deserialize(deserializer)?;
    match ms {
        None => Ok(None),
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(Some(Duration::from_millis(ms as u64))),
        Some(ms) => Err(de::Error::custom(format!("invalid timeout {ms}"))),
    }
}
