//! Where an object goes: an S3 endpoint, a bucket and a key, addressed
//! path-style (`endpoint/bucket/key`, S3-compatible stores) or
//! virtual-hosted (`bucket.endpoint/key`, AWS's default).

use url::Url;

use crate::sigv4::encode;

/// An object's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:5000`, …
    pub endpoint: Url,
    /// The bucket.
    pub bucket: String,
    /// The object key (any UTF-8; `/` separates nothing special).
    pub key: String,
    /// The signing region (`us-east-1` when unknown).
    pub region: String,
    /// `endpoint/bucket/key` instead of `bucket.endpoint/key`.
    pub path_style: bool,
}

/// `s3://BUCKET/KEY` split into bucket and key (the key may be empty);
/// `None` for another scheme.
pub fn split_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

impl Target {
    /// The object `key` in `bucket`: at `endpoint` (an S3-compatible
    /// store, path-style) or, without one, on AWS. Refuses an empty bucket
    /// or key, and an endpoint that is not an http(s) URL.
    pub fn new(endpoint: Option<&str>, bucket: &str, key: &str, region: &str) -> Result<Target, String> {
        if bucket.is_empty() || key.is_empty() {
            return Err(format!(
                "an S3 object needs a bucket and a key (bucket {bucket:?}, key {key:?})"
            ));
        }
        match endpoint {
            None => Ok(Target::aws(bucket, key, region)),
            Some(endpoint) => match Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Target::at(url, bucket, key, region)),
                _ => Err(format!("the S3 endpoint is not an http(s) URL: {endpoint}")),
            },
        }
    }

    /// An object on AWS: `https://BUCKET.s3.REGION.amazonaws.com/KEY`.
    pub fn aws(bucket: &str, key: &str, region: &str) -> Target {
        let endpoint = Url::parse(&format!("https://s3.{region}.amazonaws.com")).unwrap_or_else(|_| {
            // A region that makes no host name: the global endpoint.
            Url::parse("https://s3.amazonaws.com").unwrap_or_else(|_| unreachable!())
        });
        Target {
            endpoint,
            bucket: bucket.into(),
            key: key.into(),
            region: region.into(),
            path_style: bucket.contains('.'),
        }
    }

    /// An object on an S3-compatible store at `endpoint`, path-style.
    pub fn at(endpoint: Url, bucket: &str, key: &str, region: &str) -> Target {
        Target {
            endpoint,
            bucket: bucket.into(),
            key: key.into(),
            region: region.into(),
            path_style: true,
        }
    }

    /// The `Host` header, with the port when it is not the scheme's.
    pub fn host(&self) -> String {
        let host = self.endpoint.host_str().unwrap_or_default();
        let host = if self.path_style {
            host.to_string()
        } else {
            format!("{}.{host}", self.bucket)
        };
        match self.endpoint.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    }

    /// The object's path, percent-encoded as signed and sent.
    pub fn path(&self) -> String {
        let base = self.endpoint.path().trim_end_matches('/');
        let key = encode(&self.key, false);
        if self.path_style {
            format!("{base}/{}/{key}", encode(&self.bucket, true))
        } else {
            format!("{base}/{key}")
        }
    }

    /// The URL of a request on the object with `query` (not encoded).
    pub fn url(&self, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}://{}{}", self.endpoint.scheme(), self.host(), self.path());
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode(k, true));
            if !v.is_empty() || *k != "uploads" {
                url.push('=');
                url.push_str(&encode(v, true));
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_path_style_and_virtual_hosted() {
        let t = Target::at(
            Url::parse("http://127.0.0.1:5000").unwrap(),
            "b",
            "dir/a b+c.bin",
            "us-east-1",
        );
        assert_eq!(t.host(), "127.0.0.1:5000");
        assert_eq!(t.path(), "/b/dir/a%20b%2Bc.bin");
        assert_eq!(
            t.url(&[("partNumber", "2"), ("uploadId", "x/y")]),
            "http://127.0.0.1:5000/b/dir/a%20b%2Bc.bin?partNumber=2&uploadId=x%2Fy"
        );
        assert_eq!(
            t.url(&[("uploads", "")]),
            "http://127.0.0.1:5000/b/dir/a%20b%2Bc.bin?uploads"
        );
        let t = Target::aws("bucket", "k", "eu-west-1");
        assert_eq!(t.host(), "bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(t.url(&[]), "https://bucket.s3.eu-west-1.amazonaws.com/k");
        // A dotted bucket would break the certificate's wildcard.
        assert!(Target::aws("a.b", "k", "us-east-1").path_style);
    }

    #[test]
    fn urls_and_endpoints_are_checked() {
        assert_eq!(split_s3_url("s3://b/dir/k"), Some(("b", "dir/k")));
        assert_eq!(split_s3_url("s3://b"), Some(("b", "")));
        assert_eq!(split_s3_url("https://b/k"), None);
        assert!(Target::new(None, "b", "", "us-east-1").is_err());
        assert!(Target::new(Some("ftp://x"), "b", "k", "us-east-1").is_err());
        let t = Target::new(Some("http://127.0.0.1:9000"), "b", "k", "eu-west-1").unwrap();
        assert_eq!(
            (t.path_style, t.url(&[])),
            (true, "http://127.0.0.1:9000/b/k".to_string())
        );
    }
}
