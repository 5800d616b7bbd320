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
    // Careful: a chunked upload creates its resource with no body first.
    let create = send(&mut s);
    assert_eq!((create.len, value(&create, "Upload-Complete")), (0, Some("?0")));
    assert_eq!(value(&create, "Upload-Length"), Some("10"));
    let created = hs(&[
        h("Location", "/upload/2"),
        h("Upload-Limit", "max-append-size=3, max-age=60"),
    ]);
    let answer = Answer {
        status: 201,
        headers: &created,
        unix_time: 784_111_717,
    };
    assert_eq!(s.handle_answer(&answer), Next::Send);
    assert_eq!(s.expires(), Some("Sun, 06 Nov 1994 08:49:37 GMT"), "max-age as a date");
    let patch = send(&mut s);
    assert_eq!((patch.start, patch.len), (0, 3), "max-append-size caps pieces");
    assert_eq!(value(&patch, "Upload-Complete"), Some("?0"));
    assert_eq!(s.handle_response(204, &hs(&[h("Upload-Complete", "?0")])), Next::Send);
    send(&mut s);
    // 409 carries the right offset.
    assert_eq!(s.handle_response(409, &hs(&[h("Upload-Offset", "2")])), Next::Send);
    assert_eq!((send(&mut s).start, s.poll_step().len), (2, 3));
    assert_eq!(s.handle_response(204, &hs(&[h("Upload-Complete", "?0")])), Next::Send);
    assert_eq!(s.poll_step().start, 5);
    // A max-size below the length: the resource is deleted, then it fails.
    assert_eq!(
        s.handle_response(204, &hs(&[h("Upload-Limit", "max-size=5")])),
        Next::Interrupt
    );
    let delete = send(&mut s);
    assert_eq!(
        (delete.method, delete.url.as_str()),
        ("DELETE", "http://127.0.0.1:9/upload/2")
    );
    assert!(matches!(s.handle_response(204, &hs(&[])), Next::Fail(e) if e.message.contains("at most 5 bytes")));
    let mut s = ietf(None);
    assert!(matches!(
        s.handle_response(413, &hs(&[h("Upload-Limit", "max-size=5")])),
        Next::Fail(_)
    ));
    let mut s = ietf(None);
    send(&mut s);
    assert_eq!(s.handle_response(500, &hs(&[])), Next::Recover(Some(500)));
}

/// Each case: a session, the answers it gets, the outcome. A success is
/// only a 2xx answer to the request that completed the upload.
#[test]
fn ietf_never_reports_a_failure_as_success() {
    let located = |s: &mut Session| {
        send(s);
        assert_eq!(
            s.handle_interim(
                104,
                &hs(&[h("Location", "/upload/7"), h("Upload-Draft-Interop-Version", "8")])
            ),
            None
        );
    };
    // A 5xx that says the upload is complete is the outcome, not resumed.
    let mut s = ietf(None);
    located(&mut s);
    assert_eq!(s.handle_response(500, &hs(&[h("Upload-Complete", "?1")])), Next::Done);
    let mut s = ietf(Some(4));
    send(&mut s);
    s.handle_response(201, &hs(&[h("Location", "/upload/3")]));
    send(&mut s);
    s.handle_response(204, &hs(&[h("Upload-Complete", "?0")]));
    send(&mut s);
    s.handle_response(204, &hs(&[h("Upload-Complete", "?0")]));
    let last = send(&mut s);
    assert_eq!(value(&last, "Upload-Complete"), Some("?1"));
    assert_eq!(s.handle_response(422, &hs(&[h("Upload-Complete", "?1")])), Next::Done);
    // A HEAD that finds the upload complete: its answer was lost; never a success.
    let mut s = ietf(None);
    located(&mut s);
    assert_eq!(s.handle_response(503, &hs(&[])), Next::Recover(Some(503)));
    assert_eq!(send(&mut s).method, "HEAD");
    let complete = hs(&[h("Upload-Offset", "10"), h("Upload-Complete", "?1")]);
    assert!(matches!(s.handle_response(204, &complete), Next::Fail(e) if e.message.contains("was lost")));
    // 404 after a lost answer: not sent again.
    let mut s = ietf(None);
    located(&mut s);
    s.handle_failure();
    send(&mut s);
    assert!(matches!(s.handle_response(404, &hs(&[])), Next::Fail(e) if e.message.contains("not sent again")));
    assert_eq!(
        s.poll_url_change(),
        Some(UrlChange::Learned("http://127.0.0.1:9/upload/7".into()))
    );
    assert_eq!(s.poll_url_change(), Some(UrlChange::Forgotten));
    // 410 completed-upload: the server's word is the outcome.
    let mut s = ietf(None);
    located(&mut s);
    s.handle_failure();
    send(&mut s);
    let problem = hs(&[h("Content-Type", "application/problem+json")]);
    let gone = Answer {
        status: 410,
        headers: &problem,
        unix_time: 0,
    };
    assert_eq!(s.handle_answer(&gone), Next::Done);
}

#[test]
fn ietf_refusals_fall_back_to_a_plain_upload() {
    // tusd answers a version it does not know as plain tus (412 with
    // Tus-Resumable): said clearly. NIOResumableUpload answers 400; a
    // server that ignores the protocol answers a careful creation with no
    // Location: the whole body goes plainly.
    let mut s = ietf(Some(4));
    send(&mut s);
    let tusd = hs(&[h("Tus-Resumable", "1.0.0"), h("Tus-Version", "1.0.0")]);
    assert!(matches!(s.handle_response(412, &tusd), Next::Fail(e) if e.message.contains("speaks tus 1.0.0")));
    let refusals: [(u16, &[(&str, &str)]); 3] = [(412, &[]), (400, &[]), (201, &[])];
    for (status, fields) in refusals {
        let mut s = ietf(Some(4));
        assert_eq!(send(&mut s).len, 0, "careful");
        assert_eq!(s.handle_response(status, &hs(fields)), Next::Send, "{status}");
        let plain = send(&mut s);
        assert_eq!(
            (plain.method, plain.url.as_str(), plain.start, plain.len),
            ("POST", "http://127.0.0.1:9/upload", 0, 10),
            "{status}"
        );
        assert_eq!(value(&plain, "Upload-Draft-Interop-Version"), None);
        assert_eq!(value(&plain, "Upload-Complete"), None);
        assert_eq!(value(&plain, "Content-Type"), Some("application/pdf"));
        assert_eq!(s.handle_response(200, &hs(&[])), Next::Done, "{status}");
    }
    // Optimistic: a 400 with no 104 before it is a refusal too; the plain
    // request's answer is the outcome, whatever it is.
    let mut s = ietf(None);
    send(&mut s);
    assert_eq!(s.handle_response(400, &hs(&[])), Next::Send);
    assert_eq!(send(&mut s).len, 10);
    assert_eq!(s.handle_response(400, &hs(&[])), Next::Done);
    // After a 104 named the resource, a 400 is the server's answer.
    let mut s = ietf(None);
    send(&mut s);
    s.handle_interim(104, &hs(&[h("Location", "/u"), h("Upload-Draft-Interop-Version", "8")]));
    assert_eq!(s.handle_response(400, &hs(&[])), Next::Done);
}

#[test]
fn ietf_104s_are_checked_and_limits_act_at_once() {
    // Versions 7 and 8 are recognised; others ignored.
    for (version, learned) in [("7", true), ("8", true), ("6", false), ("9", false)] {
        let mut s = ietf(None);
        send(&mut s);
        s.handle_interim(
            104,
            &hs(&[h("Location", "/u"), h("Upload-Draft-Interop-Version", version)]),
        );
        assert_eq!(s.upload_url().is_some(), learned, "{version}");
    }
    // A 104 with a max-size below the length stops the request and deletes.
    let mut s = ietf(None);
    send(&mut s);
    let limit = hs(&[
        h("Location", "/upload/9"),
        h("Upload-Draft-Interop-Version", "8"),
        h("Upload-Limit", "max-size=5"),
    ]);
    assert_eq!(s.handle_interim(104, &limit), Some(Next::Interrupt));
    assert_eq!(send(&mut s).method, "DELETE");
    assert!(matches!(s.handle_failure(), Next::Fail(_)));
    // A 104 with a max-append-size below the piece under way: stop, ask
    // the offset, go on in smaller pieces.
    let mut s = ietf(None);
    send(&mut s);
    let limit = hs(&[
        h("Location", "/upload/9"),
        h("Upload-Draft-Interop-Version", "8"),
        h("Upload-Limit", "max-append-size=4"),
    ]);
    assert_eq!(s.handle_interim(104, &limit), Some(Next::Interrupt));
    assert_eq!(send(&mut s).method, "HEAD");
    s.handle_response(204, &hs(&[h("Upload-Offset", "2"), h("Upload-Complete", "?0")]));
    assert_eq!((s.poll_step().start, s.poll_step().len), (2, 4));
    // Two 104s naming different resources: cancelled.
    let mut s = ietf(None);
    send(&mut s);
    let first = hs(&[h("Location", "/upload/1"), h("Upload-Draft-Interop-Version", "8")]);
    let second = hs(&[h("Location", "/upload/2"), h("Upload-Draft-Interop-Version", "8")]);
    assert_eq!(s.handle_interim(104, &first), None);
    assert_eq!(s.handle_interim(104, &second), Some(Next::Interrupt));
    // A final Location other than the 104's: cancelled.
    let mut s = ietf(Some(4));
    send(&mut s);
    assert_eq!(s.handle_interim(104, &first), None);
    assert_eq!(
        s.handle_response(201, &hs(&[h("Location", "/upload/2")])),
        Next::Interrupt
    );
    assert_eq!(send(&mut s).url, "http://127.0.0.1:9/upload/1");
    // A void Upload-Limit (a known key of another type) changes nothing.
    let mut s = ietf(Some(4));
    send(&mut s);
    let void = hs(&[h("Location", "/u"), h("Upload-Limit", "max-append-size=2, max-size=?1")]);
    assert_eq!(s.handle_response(201, &void), Next::Send);
    assert_eq!(s.poll_step().len, 4);
    // 413 with the resource known: smaller pieces from the server's offset.
    let mut s = ietf(Some(8));
    send(&mut s);
    s.handle_response(201, &hs(&[h("Location", "/u")]));
    assert_eq!(send(&mut s).len, 8);
    assert_eq!(s.handle_response(413, &hs(&[])), Next::Send);
    assert_eq!(send(&mut s).method, "HEAD");
    s.handle_response(204, &hs(&[h("Upload-Offset", "0"), h("Upload-Complete", "?0")]));
    assert_eq!(s.poll_step().len, 4, "halved");
    // 413 to an optimistic creation with no resource: the outcome.
    let mut s = ietf(None);
    send(&mut s);
    assert_eq!(s.handle_response(413, &hs(&[])), Next::Done);
}

#[test]
fn tus_metadata_keys_are_unique_and_creation_is_post() {
    let pairs = [
        ("filename".to_string(), "a".to_string()),
        ("k".to_string(), "1".to_string()),
        ("filename".to_string(), "b".to_string()),
    ];
    assert_eq!(tus_metadata(&pairs), "filename Yg==,k MQ==");
    let mut s = tus(None);
    s.set_method("PUT");
    assert_eq!(s.poll_step().method, "POST");
    let mut s = ietf(None);
    s.set_method("PUT");
    assert_eq!(s.poll_step().method, "PUT");
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

fn gcs(chunk: Option<u64>) -> Session {
    let config = Resumable {
        chunk_size: chunk,
        ..Resumable::new(Protocol::Gcs)
    };
    Session::new(config, "http://127.0.0.1:9/b/o?sig=1", 10, &[])
}

/// Creates `s`'s session at `location` and sends its first piece.
fn start_and_send_a_piece(s: &mut Session, location: &str) {
    let create = s.poll_step();
    s.handle_sent(&create);
    s.handle_response(200, &hs(&[h("Location", location)]));
    let piece = s.poll_step();
    s.handle_sent(&piece);
}

/// A GCS session of 10 bytes in pieces of 4, its first piece sent.
fn gcs_first_piece_sent(location: &str) -> Session {
    let mut s = gcs(Some(4));
    start_and_send_a_piece(&mut s, location);
    s
}

fn step_header(step: &Step, name: &str) -> Option<String> {
    step.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

#[test]
fn gcs_starts_a_session_then_puts_ranges_until_the_object_exists() {
    let mut s = gcs(Some(4));
    let create = s.poll_step();
    assert_eq!((create.method, create.len), ("POST", 0));
    assert_eq!(step_header(&create, "x-goog-resumable").as_deref(), Some("start"));
    s.handle_sent(&create);
    let session = hs(&[h("Location", "/b/o?upload_id=u1")]);
    assert_eq!(s.handle_response(200, &session), Next::Send);
    assert_eq!(s.upload_url(), Some("http://127.0.0.1:9/b/o?upload_id=u1"));
    let piece = s.poll_step();
    assert_eq!((piece.method, piece.start, piece.len), ("PUT", 0, 4));
    assert_eq!(step_header(&piece, "content-range").as_deref(), Some("bytes 0-3/10"));
    s.handle_sent(&piece);
    // The server kept 3 of the 4 bytes: the next piece starts at 3.
    assert_eq!(s.handle_response(308, &hs(&[h("Range", "bytes=0-2")])), Next::Send);
    let piece = s.poll_step();
    assert_eq!(step_header(&piece, "content-range").as_deref(), Some("bytes 3-6/10"));
    s.handle_sent(&piece);
    assert_eq!(s.handle_response(308, &hs(&[h("Range", "bytes=0-6")])), Next::Send);
    let last = s.poll_step();
    assert_eq!(step_header(&last, "content-range").as_deref(), Some("bytes 7-9/10"));
    s.handle_sent(&last);
    assert_eq!(s.handle_response(200, &hs(&[])), Next::Done);
}

#[test]
fn gcs_asks_the_offset_after_a_failure_and_restarts_an_expired_session_once() {
    let mut s = gcs(None);
    let create = s.poll_step();
    s.handle_sent(&create);
    s.handle_response(201, &hs(&[h("Location", "http://127.0.0.1:9/s")]));
    let piece = s.poll_step();
    s.handle_sent(&piece);
    assert_eq!(s.handle_failure(), Next::Recover(None));
    let probe = s.poll_step();
    assert_eq!((probe.method, probe.len), ("PUT", 0));
    assert_eq!(step_header(&probe, "content-range").as_deref(), Some("bytes */10"));
    s.handle_sent(&probe);
    // No Range: the server holds nothing.
    assert_eq!(s.handle_response(308, &hs(&[])), Next::Send);
    assert_eq!(s.poll_step().start, 0);
    let piece = s.poll_step();
    s.handle_sent(&piece);
    assert_eq!(s.handle_response(404, &hs(&[])), Next::Send);
    assert_eq!(s.poll_step().method, "POST");
    assert_eq!(
        s.poll_url_change(),
        Some(UrlChange::Learned("http://127.0.0.1:9/s".into()))
    );
    assert_eq!(s.poll_url_change(), Some(UrlChange::Forgotten));
    start_and_send_a_piece(&mut s, "http://127.0.0.1:9/t");
    // A second expiry is the outcome.
    assert_eq!(s.handle_response(404, &hs(&[])), Next::Done);
}

#[test]
fn gcs_refuses_a_completion_before_the_end_and_a_bad_range() {
    let mut s = gcs_first_piece_sent("/s");
    assert!(matches!(s.handle_response(200, &hs(&[])), Next::Fail(_)));
    // Any 2xx, not only GCS's 200 and 201.
    let mut s = gcs_first_piece_sent("/s");
    assert!(matches!(s.handle_response(204, &hs(&[])), Next::Fail(_)));
    let mut s = gcs_first_piece_sent("/s");
    assert!(matches!(
        s.handle_response(308, &hs(&[h("Range", "bytes=2-3")])),
        Next::Fail(_)
    ));
    // A creation without a session URI.
    let mut s = gcs(None);
    let create = s.poll_step();
    s.handle_sent(&create);
    assert!(matches!(s.handle_response(200, &hs(&[])), Next::Fail(_)));
}
