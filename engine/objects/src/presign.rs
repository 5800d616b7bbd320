//! Presigned URLs asked of the app's server over HTTP: for each request of
//! the upload, `GET ENDPOINT?method=M&…` with the request's query
//! parameters (`uploads`, `uploadId`, `partNumber`), answered `200` with
//! the URL as the body (text, or JSON `{"url": "…"}` as Uppy's companion
//! answers). The device holds no keys; the app's server decides what it
//! signs.

use std::sync::mpsc;
use std::time::Duration;

use uploadtask_engine::{Engine, Event, SourceSpec, UploadRequest};

use crate::run::Presigner;
use crate::sigv4::encode;

/// Asks `endpoint` for each URL, through `engine`.
pub struct EndpointPresigner {
    engine: Engine,
    endpoint: String,
    /// Headers sent with each question (the app's session cookie, a token).
    pub headers: Vec<(String, String)>,
}

impl EndpointPresigner {
    /// Questions go to `endpoint` (its own query, if any, is kept).
    pub fn new(engine: Engine, endpoint: impl Into<String>) -> Self {
        EndpointPresigner {
            engine,
            endpoint: endpoint.into(),
            headers: Vec::new(),
        }
    }

    /// The URL asked for `method` and `query`.
    pub fn question(&self, method: &str, query: &[(&str, &str)]) -> String {
        let mut url = self.endpoint.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("method=");
        url.push_str(method);
        for (k, v) in query {
            url.push('&');
            url.push_str(&encode(k, true));
            url.push('=');
            url.push_str(&encode(v, true));
        }
        url
    }
}

/// The URL in an answer's body: the text itself, or JSON's `"url"`.
pub fn url_in(body: &str) -> Option<String> {
    let body = body.trim();
    if body.starts_with("http://") || body.starts_with("https://") {
        return Some(body.to_string());
    }
    let at = body.find("\"url\"")? + 5;
    let rest = body[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let end = rest.find('"')?;
    let url = rest[..end].replace("\\/", "/").replace("\\u0026", "&");
    (url.starts_with("http://") || url.starts_with("https://")).then_some(url)
}

impl Presigner for EndpointPresigner {
    fn presign(&self, method: &str, query: &[(&str, &str)]) -> Result<String, String> {
        let mut request = UploadRequest::new(self.question(method, query).as_str())
            .method("GET")
            .raw_body(SourceSpec::Memory(bytes::Bytes::new()));
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        let (tx, rx) = mpsc::channel();
        self.engine.submit(request, move |event: Event| {
            if let Event::Done(result) = event {
                let _ = tx.send(result);
            }
        });
        let response = rx
            .recv_timeout(Duration::from_secs(300))
            .map_err(|_| "the presigning server did not answer".to_string())?
            .map_err(|e| format!("asking the presigning server: {e}"))?;
        let body = String::from_utf8_lossy(&response.body);
        if response.status != 200 {
            return Err(format!(
                "the presigning server answered {}: {}",
                response.status,
                body.trim()
            ));
        }
        url_in(&body).ok_or_else(|| format!("the presigning server's answer holds no URL: {}", body.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_text_or_json() {
        assert_eq!(url_in(" https://s3/x?a=1\n").as_deref(), Some("https://s3/x?a=1"));
        assert_eq!(
            url_in(r#"{"url": "https:\/\/s3\/x?a=1\u0026b=2", "headers": {}}"#).as_deref(),
            Some("https://s3/x?a=1&b=2")
        );
        assert_eq!(url_in("nope"), None);
        assert_eq!(url_in(r#"{"url": "ftp://x"}"#), None);
    }
}
