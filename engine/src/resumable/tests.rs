//! The decision table: every status class and failure, both protocols.

use super::*;

fn h<'a>(name: &'a str, value: &'a str) -> (&'a str, &'a str) {
    (name, value)
}

fn hs(fields: &[(&str, &str)]) -> Headers {
    fields.iter().copied().collect()
}

fn tus(chunk: Option<u64>) -> Session {
    let config = Resumable {
        chunk_size: chunk,
        metadata: vec![
            ("filename".into(), "a b.txt".into()),
            ("filetype".into(), "text/plain".into()),
        ],
        ..Resumable::new(Protocol::Tus)
    };
    Session::new(
        config,
        "http://127.0.0.1:9/files/",
        10,
        &[
            ("Authorization".into(), "t".into()),
            ("Content-Type".into(), "x/y".into()),
        ],
    )
}

fn ietf(chunk: Option<u64>) -> Session {
    let config = Resumable {
        chunk_size: chunk,
        metadata: vec![
            ("filename".into(), "résumé.pdf".into()),
            ("filetype".into(), "application/pdf".into()),
        ],
        ..Resumable::new(Protocol::Ietf)
    };
    Session::new(config, "http://127.0.0.1:9/upload", 10, &[])
}

fn send(session: &mut Session) -> Step {
    let step = session.poll_step();
    session.handle_sent(&step);
    step
}

fn value<'a>(step: &'a Step, name: &str) -> Option<&'a str> {
    step.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn tus_creation_then_pieces_to_the_end() {
    let mut s = tus(Some(4));
    let create = send(&mut s);
    assert_eq!((create.method, create.len), ("POST", 0));
    assert_eq!(value(&create, "Tus-Resumable"), Some("1.0.0"));
    assert_eq!(value(&create, "Upload-Length"), Some("10"));
    assert_eq!(
        value(&create, "Upload-Metadata"),
        Some("filename YSBiLnR4dA==,filetype dGV4dC9wbGFpbg==")
    );
    assert_eq!(
        value(&create, "Content-Type"),
        Some("x/y"),
        "user content headers go on creation"
    );
    assert_eq!(s.handle_response(201, &hs(&[h("Location", "abc")])), Next::Send);
    assert_eq!(
        s.poll_url_change(),
        Some(UrlChange::Learned("http://127.0.0.1:9/files/abc".into()))
    );
    let patch = send(&mut s);
    assert_eq!((patch.method, patch.start, patch.len), ("PATCH", 0, 4));
    assert_eq!(value(&patch, "Upload-Offset"), Some("0"));
    assert_eq!(value(&patch, "Content-Type"), Some("application/offset+octet-stream"));
    assert_eq!(value(&patch, "Authorization"), Some("t"));
    assert_eq!(patch.headers.iter().filter(|(n, _)| n == "Content-Type").count(), 1);
    assert_eq!(s.handle_response(204, &hs(&[h("Upload-Offset", "4")])), Next::Send);
    assert!(s.take_advanced());
    assert!(!s.take_advanced());
    assert_eq!((send(&mut s).start, s.poll_step().len), (4, 4));
    assert_eq!(s.handle_response(204, &hs(&[h("Upload-Offset", "8")])), Next::Send);
    assert_eq!((send(&mut s).start, s.poll_step().len), (8, 2));
    assert_eq!(s.handle_response(204, &hs(&[h("Upload-Offset", "10")])), Next::Done);
}

#[test]
fn tus_creation_with_upload_and_whole_body() {
    let config = Resumable {
        creation_with_upload: true,
        ..Resumable::new(Protocol::Tus)
    };
    let mut s = Session::new(config, "http://h/files", 10, &[]);
    let create = send(&mut s);
    assert_eq!((create.method, create.start, create.len), ("POST", 0, 10));
    assert_eq!(value(&create, "Content-Type"), Some("application/offset+octet-stream"));
    assert_eq!(value(&create, "Upload-Metadata"), None);
    assert_eq!(
        s.handle_response(201, &hs(&[h("Location", "http://h/files/1"), h("Upload-Offset", "10")])),
        Next::Done
    );
    // A server that took only part of it.
    let config = Resumable {
        creation_with_upload: true,
        ..Resumable::new(Protocol::Tus)
    };
    let mut s = Session::new(config, "http://h/files", 10, &[]);
    send(&mut s);
    assert_eq!(
        s.handle_response(201, &hs(&[h("Location", "/files/1"), h("Upload-Offset", "3")])),
        Next::Send
    );
    assert_eq!((s.poll_step().start, s.poll_step().len), (3, 7));
}

#[test]
fn tus_failures_probe_then_resume_from_the_servers_offset() {
    let mut s = tus(None);
    send(&mut s);
    assert_eq!(s.handle_response(201, &hs(&[h("Location", "/files/x")])), Next::Send);
    send(&mut s);
    assert_eq!(s.handle_failure(), Next::Recover(None));
    let probe = send(&mut s);
    assert_eq!((probe.method, probe.len), ("HEAD", 0));
    assert_eq!(value(&probe, "Tus-Resumable"), Some("1.0.0"));
    assert_eq!(value(&probe, "Content-Type"), None);
    assert_eq!(
        s.handle_response(200, &hs(&[h("Upload-Offset", "7"), h("Upload-Length", "10")])),
        Next::Send
    );
    assert_eq!(
        (s.poll_step().method, s.poll_step().start, s.poll_step().len),
        ("PATCH", 7, 3)
    );
    // Statuses worth another try go through the retry policy.
    for status in [408, 429, 500, 502, 503, 504] {
        send(&mut s);
        assert_eq!(s.handle_response(status, &hs(&[])), Next::Recover(Some(status)));
        assert_eq!(s.poll_step().method, "HEAD");
        assert_eq!(s.handle_response(200, &hs(&[h("Upload-Offset", "7")])), Next::Send);
    }
    send(&mut s);
    assert_eq!(s.handle_response(423, &hs(&[])), Next::Recover(None));
}

#[test]
fn tus_failure_before_the_resource_exists_creates_again() {
    let mut s = tus(None);
    send(&mut s);
    assert_eq!(s.handle_failure(), Next::Recover(None));
    assert_eq!(s.poll_step().method, "POST");
    assert_eq!(s.handle_response(503, &hs(&[])), Next::Recover(Some(503)));
    assert_eq!(s.poll_step().method, "POST");
}

#[test]
fn tus_conflict_and_checksum_mismatch_are_bounded() {
    let config = Resumable {
        checksum: true,
        upload_url: Some("http://h/files/s".into()),
        ..Resumable::new(Protocol::Tus)
    };
    let mut s = Session::new(config, "http://h/files", 10, &[]);
    assert_eq!(send(&mut s).method, "HEAD", "a stored resource is probed first");
    assert_eq!(s.handle_response(200, &hs(&[h("Upload-Offset", "2")])), Next::Send);
    let patch = send(&mut s);
    assert!(patch.checksum);
    assert_eq!(s.handle_response(460, &hs(&[])), Next::Send);
    assert_eq!(send(&mut s), patch, "the same piece again");
    assert_eq!(s.handle_response(409, &hs(&[])), Next::Send);
    assert_eq!(send(&mut s).method, "HEAD");
    for _ in 0..MAX_STALLS - 2 {
        assert_eq!(s.handle_response(200, &hs(&[h("Upload-Offset", "2")])), Next::Send);
        send(&mut s);
        assert_eq!(s.handle_response(460, &hs(&[])), Next::Send);
        send(&mut s);
    }
    assert!(matches!(s.handle_response(460, &hs(&[])), Next::Fail(e) if e.kind == ErrorKind::Protocol));
}

#[test]
fn gone_resources_start_over_once() {
    for status in [404, 410] {
        let config = Resumable {
            upload_url: Some("http://h/files/old".into()),
            ..Resumable::new(Protocol::Tus)
        };
        let mut s = Session::new(config, "http://h/files", 10, &[]);
        send(&mut s);
        assert_eq!(s.handle_response(status, &hs(&[])), Next::Send);
        assert_eq!(s.poll_url_change(), Some(UrlChange::Forgotten));
        assert_eq!(
            (s.poll_step().method, s.poll_step().url.as_str()),
            ("POST", "http://h/files")
        );
        send(&mut s);
        assert_eq!(s.handle_response(201, &hs(&[h("Location", "/files/new")])), Next::Send);
        send(&mut s);
        assert_eq!(
            s.handle_response(status, &hs(&[])),
            Next::Done,
            "a second loss is the outcome"
        );
    }
}

#[test]
fn other_statuses_are_the_outcome() {
    for status in [400, 401, 403, 405, 412, 413, 415] {
        let mut s = tus(None);
        send(&mut s);
        assert_eq!(s.handle_response(status, &hs(&[])), Next::Done, "{status}");
    }
}

#[test]
fn bad_answers_fail_as_protocol_errors() {
    let mut s = tus(None);
    send(&mut s);
    assert!(matches!(s.handle_response(201, &hs(&[])), Next::Fail(_)), "no Location");
    let mut s = tus(None);
    send(&mut s);
    s.handle_response(201, &hs(&[h("Location", "/x")]));
    send(&mut s);
    assert!(
        matches!(s.handle_response(204, &hs(&[])), Next::Fail(_)),
        "no Upload-Offset"
    );
    s.handle_failure();
    send(&mut s);
    assert!(matches!(
        s.handle_response(200, &hs(&[h("Upload-Offset", "-1")])),
        Next::Fail(_)
    ));
    s.handle_failure();
    send(&mut s);
    assert!(
        matches!(s.handle_response(200, &hs(&[h("Upload-Offset", "11")])), Next::Fail(_)),
        "beyond the length"
    );
}

#[test]
fn ietf_optimistic_creation_learns_the_resource_from_104() {
    let mut s = ietf(None);
    let create = send(&mut s);
    assert_eq!((create.method, create.len, create.interim), ("POST", 10, true));
    assert_eq!(value(&create, "Upload-Draft-Interop-Version"), Some("8"));
    assert_eq!(value(&create, "Upload-Complete"), Some("?1"));
    assert_eq!(value(&create, "Upload-Length"), Some("10"));
    assert_eq!(value(&create, "Content-Type"), Some("application/pdf"));
    assert_eq!(
        value(&create, "Content-Disposition"),
        Some("inline; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
    );
    // Another interop version's 104 is ignored.
    s.handle_interim(
        104,
        &hs(&[h("Location", "/wrong"), h("Upload-Draft-Interop-Version", "6")]),
    );
    assert_eq!(s.upload_url(), None);
    s.handle_interim(
        104,
        &hs(&[h("Location", "/upload/1"), h("Upload-Draft-Interop-Version", "8")]),
    );
    assert_eq!(
        s.poll_url_change(),
        Some(UrlChange::Learned("http://127.0.0.1:9/upload/1".into()))
    );
    assert_eq!(s.handle_failure(), Next::Recover(None));
    let probe = send(&mut s);
    assert_eq!(
        (probe.method, probe.url.as_str()),
        ("HEAD", "http://127.0.0.1:9/upload/1")
    );
    assert_eq!(value(&probe, "Upload-Draft-Interop-Version"), Some("8"));
    assert_eq!(
        s.handle_response(204, &hs(&[h("Upload-Offset", "6"), h("Upload-Complete", "?0")])),
        Next::Send
    );
    let patch = send(&mut s);
    assert_eq!((patch.method, patch.start, patch.len), ("PATCH", 6, 4));
    assert_eq!(value(&patch, "Upload-Offset"), Some("6"));
    assert_eq!(value(&patch, "Upload-Complete"), Some("?1"));
    assert_eq!(value(&patch, "Content-Type"), Some("application/partial-upload"));
    assert_eq!(value(&patch, "Content-Disposition"), None);
    assert_eq!(s.handle_response(200, &hs(&[h("Upload-Complete", "?1")])), Next::Done);
}

#[test]
fn ietf_whole_body_in_creation_is_done_and_without_104_starts_over() {
    let mut s = ietf(None);
    send(&mut s);
    assert_eq!(s.handle_response(200, &hs(&[])), Next::Done);
    let mut s = ietf(None);
    send(&mut s);
    assert_eq!(s.handle_failure(), Next::Recover(None));
    assert_eq!((s.poll_step().method, s.poll_step().start), ("POST", 0));
}

#[test]
fn ietf_pieces_conflict_and_limits() {
    let mut s = ietf(Some(4));
    let create = send(&mut s);
    assert_eq!((create.len, value(&create, "Upload-Complete")), (4, Some("?0")));
    assert_eq!(
        s.handle_response(
            201,
            &hs(&[
                h("Location", "/upload/2"),
                h("Upload-Limit", "max-append-size=3, max-age=60")
            ])
        ),
        Next::Send
    );
    assert_eq!(s.expires(), Some("max-age=60"));
    let patch = send(&mut s);
    assert_eq!((patch.start, patch.len), (4, 3), "max-append-size caps pieces");
    assert_eq!(value(&patch, "Upload-Complete"), Some("?0"));
    // 409 carries the right offset.
    assert_eq!(s.handle_response(409, &hs(&[h("Upload-Offset", "2")])), Next::Send);
    assert_eq!((send(&mut s).start, s.poll_step().len), (2, 3));
    assert_eq!(s.handle_response(204, &hs(&[h("Upload-Complete", "?0")])), Next::Send);
    assert_eq!(s.poll_step().start, 5);
    let mut s = ietf(None);
    assert!(matches!(
        s.handle_response(413, &hs(&[h("Upload-Limit", "max-size=5")])),
        Next::Fail(_)
    ));
    let mut s = ietf(None);
    send(&mut s);
    assert_eq!(s.handle_response(500, &hs(&[])), Next::Recover(Some(500)));
}

#[test]
fn empty_bodies() {
    let mut s = Session::new(Resumable::new(Protocol::Tus), "http://h/f", 0, &[]);
    send(&mut s);
    assert_eq!(s.handle_response(201, &hs(&[h("Location", "/f/1")])), Next::Done);
    let mut s = Session::new(Resumable::new(Protocol::Ietf), "http://h/f", 0, &[]);
    let create = send(&mut s);
    assert_eq!((create.len, value(&create, "Upload-Complete")), (0, Some("?1")));
    assert_eq!(s.handle_response(201, &hs(&[])), Next::Done);
}

#[test]
fn metadata_skips_keys_it_cannot_carry() {
    let pairs = vec![
        ("ok".to_string(), "v".to_string()),
        ("bad key".to_string(), "v".to_string()),
        ("a,b".to_string(), "v".to_string()),
        ("empty".to_string(), String::new()),
    ];
    assert_eq!(tus_metadata(&pairs), "ok dg==,empty");
    assert_eq!(tus_checksum(&[0; 20]), "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
}

#[test]
fn tus_upload_expires_is_reported_once_per_value() {
    let mut s = tus(Some(4));
    send(&mut s);
    let expires = h("Upload-Expires", "Wed, 25 Nov 2099 10:00:00 GMT");
    assert_eq!(
        s.handle_response(201, &hs(&[h("Location", "/files/e"), expires])),
        Next::Send
    );
    assert_eq!(
        s.poll_url_change(),
        Some(UrlChange::Learned("http://127.0.0.1:9/files/e".into()))
    );
    assert_eq!(
        s.poll_url_change(),
        Some(UrlChange::Expires("Wed, 25 Nov 2099 10:00:00 GMT".into()))
    );
    assert_eq!(s.poll_url_change(), None);
    send(&mut s);
    assert_eq!(
        s.handle_response(204, &hs(&[h("Upload-Offset", "4"), expires])),
        Next::Send
    );
    assert_eq!(s.poll_url_change(), None, "the same expiry again is no news");
    assert_eq!(s.expires(), Some("Wed, 25 Nov 2099 10:00:00 GMT"));
}
