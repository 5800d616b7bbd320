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

impl Target {
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
}
