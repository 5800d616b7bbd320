//! `Upload-Limit` (a structured-field Dictionary, RFC 9651) as the IETF
//! draft reads it: members with unknown keys are ignored; a known key whose
//! value is not an Integer voids the whole field. Also the HTTP-date a
//! `max-age` ends at, for the store.
//!
//! ```
//! use uploadtask_engine::resumable::limits::UploadLimit;
//!
//! let limit = UploadLimit::parse("max-size=100, max-append-size=10, x=\"y\"").unwrap();
//! assert_eq!((limit.max_size, limit.max_append_size), (Some(100), Some(10)));
//! assert_eq!(UploadLimit::parse("max-size=100, max-age=?1"), None, "a known key of the wrong type voids it");
//! ```

/// The limits an `Upload-Limit` field states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadLimit {
    /// `max-size`: the largest upload the server takes.
    pub max_size: Option<u64>,
    /// `max-append-size`: the largest body of one request.
    pub max_append_size: Option<u64>,
    /// `min-append-size`: the smallest body of one request (but the last).
    pub min_append_size: Option<u64>,
    /// `max-age`: seconds the resource has left.
    pub max_age: Option<u64>,
}

impl UploadLimit {
    /// Parses the field; `None` when it is void (not a Dictionary, or a
    /// known key with a value that is not a non-negative Integer).
    pub fn parse(value: &str) -> Option<UploadLimit> {
        let mut limit = UploadLimit::default();
        for member in value.split(',') {
            let member = member.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                return None; // an empty member is not a Dictionary
            }
            let (key, value) = match member.split_once('=') {
                Some((key, value)) => (key, Some(value)),
                None => (member, None), // a bare key is the Boolean true
            };
            // A member's parameters (`;a=b`) do not change its value's type.
            let key = key.split(';').next().unwrap_or(key);
            if !is_key(key) {
                return None;
            }
            let slot = match key {
                "max-size" => &mut limit.max_size,
                "max-append-size" => &mut limit.max_append_size,
                "min-append-size" => &mut limit.min_append_size,
                "max-age" => &mut limit.max_age,
                _ => continue,
            };
            let value = value.map(|v| v.split(';').next().unwrap_or(v));
            // Later members of the same key replace earlier ones (RFC 9651).
            *slot = Some(value.and_then(integer)?);
        }
        Some(limit)
    }
}

/// A structured-field key: `lcalpha / "*"` then `lcalpha / DIGIT / "_" / "-" / "." / "*"`.
fn is_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b))
}

/// A non-negative structured-field Integer (at most 15 digits).
fn integer(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) `seconds` after the
/// Unix epoch.
pub fn http_date(seconds: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = seconds / 86_400;
    let secs = seconds % 86_400;
    let (year, month, day) = uploadtask_http1::date::civil_from_days(days as i64);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_void_fields() {
        let parse = UploadLimit::parse;
        assert_eq!(
            parse("max-size=1000000000, max-age=3600"),
            Some(UploadLimit {
                max_size: Some(1_000_000_000),
                max_age: Some(3600),
                ..UploadLimit::default()
            })
        );
        assert_eq!(parse("min-append-size=5;x=1, other=?0, z=\"s\""), {
            Some(UploadLimit {
                min_append_size: Some(5),
                ..UploadLimit::default()
            })
        });
        assert_eq!(parse("max-size=9, max-size=7").unwrap().max_size, Some(7));
        for void in [
            "max-size=-1",
            "max-size=1.5",
            "max-size=\"10\"",
            "max-size",
            "max-append-size=10, max-size=abc",
            "max-size=10,,",
            "Max-Size=10",
            "max-size=1234567890123456",
        ] {
            assert_eq!(parse(void), None, "{void}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            crate::proto::retry::parse_retry_after(&http_date(4_102_444_800), 4_102_444_700),
            Some(std::time::Duration::from_secs(100))
        );
    }
}
