//! The few pieces of S3's XML answers a multipart upload reads: the
//! upload id, the parts a store has, an error's code and message. A small
//! scanner, not a parser: S3's answers are flat and entity-escaped only.

/// The text of each `<tag>…</tag>` in `xml`, in order, entities decoded.
pub fn all<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = String> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = unescape(&rest[start..start + len]);
        rest = &rest[start + len + close.len()..];
        Some(text)
    })
}

/// The first `<tag>…</tag>`'s text.
pub fn first(xml: &str, tag: &str) -> Option<String> {
    all(xml, tag).next()
}

/// An S3 error document's code and message (`<Error><Code>…`), if `xml`
/// is one. S3 may send it with a `200` status (CompleteMultipartUpload
/// does when it fails after it started answering).
pub fn error(xml: &str) -> Option<(String, String)> {
    let body = first(xml, "Error")?;
    let code = first(&body, "Code").unwrap_or_default();
    let message = first(&body, "Message").unwrap_or_default();
    Some((code, message))
}

/// `&amp;` `&lt;` `&gt;` `&quot;` `&apos;` and numeric references.
pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for an element's content (quotes stay: an ETag reads
/// `"…"` as S3 shows it).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_upload_id_parts_and_errors() {
        let created = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>abc&amp;1</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(first(created, "UploadId").as_deref(), Some("abc&1"));
        let parts = "<ListPartsResult><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><Size>5</Size></Part>\
                     <Part><PartNumber>2</PartNumber><ETag>\"e2\"</ETag><Size>3</Size></Part></ListPartsResult>";
        let etags: Vec<String> = all(parts, "ETag").collect();
        assert_eq!(etags, ["\"e1\"", "\"e2\""]);
        assert_eq!(all(parts, "Part").count(), 2);
        let failed =
            "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We&apos;re sorry</Message></Error>";
        assert_eq!(error(failed), Some(("InternalError".into(), "We're sorry".into())));
        assert_eq!(error(created), None);
    }

    #[test]
    fn unescape_leaves_what_it_does_not_know() {
        assert_eq!(unescape("a &bogus; &#65;&#x42; & b"), "a &bogus; AB & b");
        assert_eq!(unescape(&escape("<a & 'b'>\"")), "<a & 'b'>\"");
    }
}
