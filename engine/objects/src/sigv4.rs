//! AWS Signature Version 4 for S3, without I/O: the `Authorization`
//! header of a request, or a presigned URL (query-string signing).
//!
//! ```text
//!  canonical request = METHOD \n URI \n QUERY \n headers \n signed names \n payload hash
//!  string to sign    = AWS4-HMAC-SHA256 \n date-time \n scope \n sha256(canonical request)
//!  signing key       = HMAC chain: "AWS4"+secret ─► date ─► region ─► service ─► "aws4_request"
//! ```
//!
//! S3's path is encoded once (each segment, `/` kept), never twice as other
//! services do. Checked against AWS's published vectors (the test suite's
//! `get-vanilla` family and S3's worked examples).
//!
//! ```
//! use uploadtask_objects::sigv4::{Credentials, SignRequest};
//!
//! let credentials = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
//! let request = SignRequest {
//!     method: "GET",
//!     host: "example.amazonaws.com",
//!     path: "/",
//!     query: &[],
//!     headers: &[],
//!     payload_sha256: uploadtask_objects::sigv4::EMPTY_SHA256,
//!     region: "us-east-1",
//!     service: "service",
//!     amz_date: "20150830T123600Z",
//! };
//! let signed = credentials.sign(&request);
//! assert!(signed.authorization.ends_with("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// The SHA-256 of no bytes, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The payload hash of a body not hashed into the signature (its
/// integrity is a per-part checksum instead).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// An access key, its secret and an optional session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"…")
            .field("session_token", &self.session_token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// What is signed: the request as it goes on the wire.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// `GET`, `PUT`, …
    pub method: &'a str,
    /// The `Host` header (with `:port` when not the scheme's default).
    pub host: &'a str,
    /// The path as sent (already percent-encoded).
    pub path: &'a str,
    /// Query parameters, not encoded; order does not matter.
    pub query: &'a [(&'a str, &'a str)],
    /// Headers to sign besides `host`, `x-amz-date`,
    /// `x-amz-content-sha256` (S3) and `x-amz-security-token`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_sha256: &'a str,
    /// `us-east-1`, …
    pub region: &'a str,
    /// `s3`.
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ` ([`amz_date`]).
    pub amz_date: &'a str,
}

/// The headers to add to a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The `Authorization` header's value.
    pub authorization: String,
    /// Every header to send besides `Host` and the request's own:
    /// `x-amz-date`, `x-amz-content-sha256` (S3), `x-amz-security-token`.
    pub headers: Vec<(String, String)>,
}

impl Credentials {
    /// Keys without a session token.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`; `None` when either key is missing.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty())?;
        let token = std::env::var("AWS_SESSION_TOKEN").ok().filter(|v| !v.is_empty());
        Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: token,
        })
    }

    /// Signs `request` with headers (`Authorization`).
    pub fn sign(&self, request: &SignRequest<'_>) -> Signed {
        let mut extra: Vec<(String, String)> = vec![("x-amz-date".into(), request.amz_date.into())];
        if request.service == "s3" {
            extra.push(("x-amz-content-sha256".into(), request.payload_sha256.into()));
        }
        if let Some(token) = &self.session_token {
            extra.push(("x-amz-security-token".into(), token.clone()));
        }
        let mut headers: Vec<(String, String)> = vec![("host".into(), request.host.trim().into())];
        headers.extend(extra.iter().cloned());
        headers.extend(request.headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let (canonical_headers, signed_names) = canonical_headers(&headers);
        let query = canonical_query(request.query.iter().map(|&(k, v)| (k.to_string(), v.to_string())));
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            request.method, request.path, query, canonical_headers, signed_names, request.payload_sha256
        );
        let scope = scope(request);
        let signature = self.signature(request, &scope, &canonical);
        Signed {
            authorization: format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
                self.access_key_id
            ),
            headers: extra,
        }
    }

    /// A presigned URL's query (`X-Amz-…` parameters and the signature),
    /// valid for `expires_secs`, signing only `host` and an unsigned
    /// payload: anyone holding the URL may send that request.
    pub fn presign_query(&self, request: &SignRequest<'_>, expires_secs: u32) -> Vec<(String, String)> {
        let scope = scope(request);
        let mut query: Vec<(String, String)> = request
            .query
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect();
        query.push(("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()));
        query.push(("X-Amz-Credential".into(), format!("{}/{scope}", self.access_key_id)));
        query.push(("X-Amz-Date".into(), request.amz_date.into()));
        query.push(("X-Amz-Expires".into(), expires_secs.to_string()));
        if let Some(token) = &self.session_token {
            query.push(("X-Amz-Security-Token".into(), token.clone()));
        }
        query.push(("X-Amz-SignedHeaders".into(), "host".into()));
        let canonical = format!(
            "{}\n{}\n{}\nhost:{}\n\nhost\n{UNSIGNED_PAYLOAD}",
            request.method,
            request.path,
            canonical_query(query.iter().cloned()),
            request.host.trim()
        );
        let signature = self.signature(request, &scope, &canonical);
        query.push(("X-Amz-Signature".into(), signature));
        query
    }

    fn signature(&self, request: &SignRequest<'_>, scope: &str, canonical: &str) -> String {
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            request.amz_date,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let date = &request.amz_date[..request.amz_date.len().min(8)];
        let secret = format!("AWS4{}", self.secret_access_key);
        let mut key = hmac(secret.as_bytes(), date.as_bytes());
        for part in [request.region, request.service, "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        hex::encode(hmac(&key, to_sign.as_bytes()))
    }
}

fn scope(request: &SignRequest<'_>) -> String {
    let date = &request.amz_date[..request.amz_date.len().min(8)];
    format!("{date}/{}/{}/aws4_request", request.region, request.service)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case names, values trimmed with inner runs of spaces folded,
/// sorted by name; duplicates joined with commas.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut entries: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.trim().to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        match merged.last_mut() {
            Some((last, joined)) if *last == name => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let canonical = merged.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let names = merged.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    (canonical, names)
}

/// Parameters encoded (RFC 3986 unreserved kept), sorted by name then value.
fn canonical_query(params: impl Iterator<Item = (String, String)>) -> String {
    let mut encoded: Vec<(String, String)> = params.map(|(k, v)| (encode(&k, true), encode(&v, true))).collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but RFC 3986's unreserved characters; `/` too when
/// `slash` (a query), not in a path.
pub fn encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (b == b'/' && !slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` for `time` (UTC).
pub fn amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn suite(path: &str, query: &[(&str, &str)]) -> String {
        let credentials = Credentials::new("AKIDEXAMPLE", SUITE_SECRET);
        let request = SignRequest {
            method: "GET",
            host: "example.amazonaws.com",
            path,
            query,
            headers: &[],
            payload_sha256: EMPTY_SHA256,
            region: "us-east-1",
            service: "service",
            amz_date: "20150830T123600Z",
        };
        credentials.sign(&request).authorization
    }

    #[test]
    fn the_test_suites_get_vanilla_family() {
        assert_eq!(
            suite("/", &[]),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        // get-vanilla-query-order-key-case: parameters sorted.
        assert!(suite("/", &[("Param2", "value2"), ("Param1", "value1")])
            .ends_with("Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
    }

    #[test]
    fn s3s_worked_example_get_object_with_a_range() {
        // The "GET Object" example of S3's SigV4 header-signing page.
        let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let request = SignRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &[("Range", "bytes=0-9")],
            payload_sha256: EMPTY_SHA256,
            region: "us-east-1",
            service: "s3",
            amz_date: "20130524T000000Z",
        };
        let signed = credentials.sign(&request);
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            signed.headers,
            [
                ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
                ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string())
            ]
        );
    }

    #[test]
    fn s3s_worked_example_presigned_get() {
        // The query-string example of S3's SigV4 page: 86400 s, host only.
        let credentials = Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let request = SignRequest {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            query: &[],
            headers: &[],
            payload_sha256: UNSIGNED_PAYLOAD,
            region: "us-east-1",
            service: "s3",
            amz_date: "20130524T000000Z",
        };
        let query = credentials.presign_query(&request, 86_400);
        assert_eq!(
            query.last().unwrap().1,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn dates_in_utc() {
        let at = |secs| amz_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(1_440_938_160), "20150830T123600Z");
        assert_eq!(at(951_782_400), "20000229T000000Z");
        assert_eq!(at(4_102_444_799), "20991231T235959Z");
    }

    #[test]
    fn encoding_keeps_unreserved_and_path_slashes() {
        assert_eq!(encode("a b/c~d_e.f-g", false), "a%20b/c~d_e.f-g");
        assert_eq!(encode("a/b+c=", true), "a%2Fb%2Bc%3D");
        assert_eq!(encode("é", true), "%C3%A9");
    }
}
