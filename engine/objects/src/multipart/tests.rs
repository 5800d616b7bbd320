use super::*;

fn plan(parts: u64) -> Plan {
    Plan::new(parts * (5 << 20), Some(5 << 20)).unwrap()
}

fn created(session: &mut Session) {
    assert_eq!(session.poll_step(), Some(Step::Create));
    session.handle_answer(
        &Step::Create,
        200,
        None,
        b"<InitiateMultipartUploadResult><UploadId>u</UploadId></InitiateMultipartUploadResult>",
    );
}

fn parts_in_flight(session: &mut Session) -> Vec<Step> {
    std::iter::from_fn(|| session.poll_step()).collect()
}

#[test]
fn parts_go_in_parallel_then_complete_in_order() {
    let mut s = Session::new(plan(5), 3, None);
    created(&mut s);
    let first = parts_in_flight(&mut s);
    assert_eq!(first.len(), 3);
    // Answers out of order: part 2 first frees a place for part 4.
    s.handle_answer(&first[1], 200, Some("\"e2\""), b"");
    assert_eq!(
        s.poll_step(),
        Some(Step::Part {
            number: 4,
            start: 15 << 20,
            len: 5 << 20
        })
    );
    for (step, etag) in [(&first[0], "\"e1\""), (&first[2], "\"e3\"")] {
        s.handle_answer(step, 200, Some(etag), b"");
    }
    let last = s.poll_step().unwrap();
    s.handle_answer(
        &Step::Part {
            number: 4,
            start: 15 << 20,
            len: 5 << 20,
        },
        200,
        Some("\"e4\""),
        b"",
    );
    s.handle_answer(&last, 200, Some("\"e5\""), b"");
    assert_eq!(s.poll_step(), Some(Step::Complete));
    let body = s.complete_body();
    let order: Vec<String> = xml::all(&body, "PartNumber").collect();
    assert_eq!(order, ["1", "2", "3", "4", "5"]);
    s.handle_answer(
        &Step::Complete,
        200,
        None,
        b"<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>",
    );
    assert!(matches!(s.poll_outcome(), Some(Outcome::Completed(_))));
    assert_eq!(s.poll_step(), None);
}

#[test]
fn a_resumed_upload_sends_only_the_parts_the_store_lacks() {
    let mut s = Session::new(plan(4), 4, Some("kept".into()));
    assert_eq!(s.poll_step(), Some(Step::List { marker: 0 }));
    // Two pages; part 3 listed with a wrong size (another plan) goes again.
    let page1 = b"<ListPartsResult><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>\
        <Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag><Size>5242880</Size></Part>\
        <Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag><Size>5242880</Size></Part></ListPartsResult>";
    s.handle_answer(&Step::List { marker: 0 }, 200, None, page1);
    assert_eq!(s.poll_step(), Some(Step::List { marker: 2 }));
    let page2 = b"<ListPartsResult><IsTruncated>false</IsTruncated>\
        <Part><PartNumber>3</PartNumber><ETag>&quot;c&quot;</ETag><Size>17</Size></Part></ListPartsResult>";
    s.handle_answer(&Step::List { marker: 2 }, 200, None, page2);
    assert_eq!(s.done(), (2, 10 << 20));
    let numbers: Vec<u32> = parts_in_flight(&mut s)
        .into_iter()
        .map(|step| match step {
            Step::Part { number, .. } => number,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(numbers, [3, 4]);
    assert!(s.complete_body().contains("<ETag>\"a\"</ETag>"));
}

#[test]
fn a_kept_upload_that_is_gone_starts_over() {
    let mut s = Session::new(plan(2), 2, Some("old".into()));
    let list = s.poll_step().unwrap();
    s.handle_answer(&list, 404, None, b"<Error><Code>NoSuchUpload</Code></Error>");
    assert_eq!(s.upload_id(), None);
    created(&mut s);
    assert_eq!(parts_in_flight(&mut s).len(), 2);
}

#[test]
fn a_part_answered_500_goes_again_and_a_403_aborts() {
    let mut s = Session::new(plan(2), 1, None);
    created(&mut s);
    let part = s.poll_step().unwrap();
    s.handle_answer(&part, 500, None, b"<Error><Code>InternalError</Code></Error>");
    assert_eq!(s.poll_step(), Some(part.clone()));
    s.handle_answer(&part, 403, None, b"<Error><Code>AccessDenied</Code></Error>");
    assert_eq!(s.poll_step(), Some(Step::Abort));
    assert_eq!(s.poll_outcome(), None);
    s.handle_answer(&Step::Abort, 204, None, b"");
    assert!(matches!(s.poll_outcome(), Some(Outcome::Refused { status: 403, .. })));
}

#[test]
fn a_part_that_keeps_failing_fails_the_upload_after_its_attempts() {
    let mut s = Session::new(plan(1), 1, None);
    created(&mut s);
    for _ in 0..PART_ATTEMPTS {
        let part = s.poll_step().unwrap();
        assert!(matches!(part, Step::Part { number: 1, .. }));
        s.handle_failure(&part, "reset");
    }
    assert_eq!(s.poll_step(), Some(Step::Abort));
    s.handle_failure(&Step::Abort, "reset");
    assert_eq!(s.poll_outcome(), Some(Outcome::Failed("part 1: reset".into())));
}

#[test]
fn a_completion_that_says_error_with_200_is_not_success() {
    let mut s = Session::new(plan(1), 1, None);
    created(&mut s);
    let part = s.poll_step().unwrap();
    s.handle_answer(&part, 200, Some("\"e\""), b"");
    for _ in 0..COMPLETE_ATTEMPTS {
        assert_eq!(s.poll_step(), Some(Step::Complete));
        s.handle_answer(
            &Step::Complete,
            200,
            None,
            b"<Error><Code>InternalError</Code><Message>x</Message></Error>",
        );
        assert_eq!(s.poll_outcome(), None);
    }
    assert_eq!(s.poll_step(), Some(Step::Abort));
    s.handle_answer(&Step::Abort, 204, None, b"");
    assert!(matches!(s.poll_outcome(), Some(Outcome::Refused { status: 500, .. })));
}

#[test]
fn an_upload_that_expires_midway_starts_over_once() {
    let mut s = Session::new(plan(2), 2, None);
    created(&mut s);
    let parts = parts_in_flight(&mut s);
    s.handle_answer(&parts[0], 404, None, b"<Error><Code>NoSuchUpload</Code></Error>");
    // The other part's late answer is ignored.
    s.handle_answer(&parts[1], 200, Some("\"late\""), b"");
    created(&mut s);
    let again = parts_in_flight(&mut s);
    assert_eq!(again.len(), 2);
    s.handle_answer(&again[0], 404, None, b"<Error><Code>NoSuchUpload</Code></Error>");
    assert_eq!(s.poll_step(), Some(Step::Abort));
}

#[test]
fn cancel_aborts_the_store_upload() {
    let mut s = Session::new(plan(3), 2, None);
    created(&mut s);
    parts_in_flight(&mut s);
    s.handle_cancel();
    assert_eq!(s.in_flight().count(), 0);
    assert_eq!(s.poll_step(), Some(Step::Abort));
    s.handle_answer(&Step::Abort, 204, None, b"");
    assert_eq!(s.poll_outcome(), Some(Outcome::Cancelled));
    // While the creation is under way: its upload is aborted once named.
    let mut s = Session::new(plan(3), 2, None);
    s.poll_step();
    s.handle_cancel();
    assert_eq!((s.poll_step(), s.poll_outcome()), (None, None));
    s.handle_answer(&Step::Create, 200, None, b"<UploadId>late</UploadId>");
    assert_eq!(s.poll_step(), Some(Step::Abort));
    s.handle_answer(&Step::Abort, 204, None, b"");
    assert_eq!(s.poll_outcome(), Some(Outcome::Cancelled));
}
