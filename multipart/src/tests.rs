use super::*;
use proptest::prelude::*;

/// Renders a body with file part `i` filled by `files[i]`, writing in pieces
/// of at most `step` bytes to exercise resuming at any byte.
fn render(body: &Body, files: &[Vec<u8>], step: u64) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut cursor = body.cursor();
    while let Some(chunk) = body.chunk(&cursor) {
        let sent = match chunk {
            Chunk::Bytes(bytes) => {
                let n = bytes.len().min(step as usize);
                wire.extend_from_slice(&bytes[..n]);
                n as u64
            }
            Chunk::File { part, offset, len } => {
                let n = len.min(step);
                wire.extend_from_slice(&files[part][offset as usize..(offset + n) as usize]);
                n
            }
        };
        assert!(sent > 0, "a chunk is never empty");
        cursor.advance(body, sent);
        assert_eq!(cursor.body_bytes_done(), wire.len() as u64);
    }
    assert!(cursor.is_done(body));
    wire
}

#[derive(Debug, PartialEq)]
struct ParsedPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// Parses with multer, an independent implementation.
fn parse_with_multer(wire: Vec<u8>, boundary: &str) -> Vec<ParsedPart> {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes::Bytes::from(wire)) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut parts = Vec::new();
        while let Some(field) = multipart.next_field().await.unwrap() {
            let name = field.name().unwrap_or("").to_string();
            let filename = field.file_name().map(str::to_string);
            let content_type = field.content_type().map(|m| m.to_string());
            let bytes = field.bytes().await.unwrap().to_vec();
            parts.push(ParsedPart {
                name,
                filename,
                content_type,
                bytes,
            });
        }
        parts
    })
}

#[test]
fn exact_wire_bytes() {
    let body = Form::new()
        .text("a", "1")
        .text("b", "")
        .file(FilePart::new("f", "dir/x.bin", 2))
        .file(FilePart::new("g", "empty.txt", 0))
        .boundary("XyZ")
        .build()
        .unwrap();
    let wire = render(&body, &[b"\x00\xff".to_vec(), vec![]], u64::MAX);
    assert_eq!(
        wire,
        b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xff\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"g\"; filename=\"empty.txt\"\r\nContent-Type: text/plain\r\n\r\n\r\n\
--XyZ--\r\n"
            .to_vec()
    );
    assert_eq!(body.content_length(), wire.len() as u64);
    // One bytes segment before each non-empty file, one after the last.
    assert_eq!(body.segments().len(), 3);
}

#[test]
fn escaping_like_browsers() {
    let body = Form::new()
        .text("q\"\r\nx", "v")
        .file(FilePart::new("n", "we\"ird\r\nname \u{1F600}.png", 0))
        .boundary("B")
        .build()
        .unwrap();
    let wire = String::from_utf8(render(&body, &[vec![]], 7)).unwrap();
    assert!(wire.contains("name=\"q%22%0D%0Ax\""));
    assert!(wire.contains("filename=\"we%22ird%0D%0Aname \u{1F600}.png\""));
    assert!(wire.contains("Content-Type: image/png"));
}

#[test]
fn random_boundary_has_128_bits_and_differs() {
    let a = Form::new().text("k", "v").build().unwrap();
    let b = Form::new().text("k", "v").build().unwrap();
    assert_ne!(a.boundary(), b.boundary());
    assert_eq!(a.boundary().len(), "uploadtask-".len() + 32);
    assert!(a.boundary().len() <= MAX_BOUNDARY_LEN);
}

#[test]
fn boundary_checks() {
    assert_eq!(
        Form::new().text("k", "a--Bb").boundary("B").build(),
        Err(FormError::BoundaryInText)
    );
    assert_eq!(Form::new().boundary("").build(), Err(FormError::InvalidBoundary));
    assert_eq!(
        Form::new().boundary("a".repeat(71)).build(),
        Err(FormError::InvalidBoundary)
    );
    assert_eq!(Form::new().boundary("a\r\n").build(), Err(FormError::InvalidBoundary));
    assert_eq!(Form::new().boundary("ends ").build(), Err(FormError::InvalidBoundary));
    let bad_type = FilePart::new("f", "x", 1).content_type("text/plain\r\nX: y");
    assert!(matches!(
        Form::new().file(bad_type).build(),
        Err(FormError::InvalidContentType(_))
    ));
}

#[test]
fn framing_cost_does_not_grow_with_file_size() {
    let small = Form::new()
        .file(FilePart::new("f", "a.bin", 1))
        .boundary("B")
        .build()
        .unwrap();
    let huge = Form::new()
        .file(FilePart::new("f", "a.bin", 1 << 40))
        .boundary("B")
        .build()
        .unwrap();
    assert_eq!(small.segments().len(), huge.segments().len());
    assert_eq!(huge.content_length() - small.content_length(), (1 << 40) - 1);
    let mut cursor = huge.cursor();
    cursor.advance(&huge, huge.content_length() - 3);
    assert_eq!(huge.chunk(&cursor), Some(Chunk::Bytes(b"-\r\n")));
    cursor.advance(&huge, 10);
    assert!(cursor.is_done(&huge));
    assert_eq!(cursor.body_bytes_done(), huge.content_length());
}

#[test]
fn basename_takes_last_component() {
    assert_eq!(basename("a/b/c.png"), "c.png");
    assert_eq!(basename("c.png"), "c.png");
    assert_eq!(basename("dir/"), "");
}

fn text() -> impl Strategy<Value = String> {
    // Printable text with the characters that need care: quotes, CR, LF, dashes, Unicode.
    proptest::string::string_regex("[a-zA-Z0-9 \"\r\n\\-_.é\u{1F600}]{0,24}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Segments add up to content_length and parse back to the same form.
    #[test]
    fn round_trip_through_multer(
        fields in proptest::collection::vec((text(), text()), 0..4),
        files in proptest::collection::vec((text(), text(), proptest::collection::vec(any::<u8>(), 0..300)), 0..3),
        step in 1u64..64,
    ) {
        let mut form = Form::new();
        for (name, value) in &fields {
            form = form.text(name.clone(), value.clone());
        }
        for (name, filename, bytes) in &files {
            form = form.file(FilePart::new(name.as_str(), filename.as_str(), bytes.len() as u64));
        }
        let body = form.build().unwrap();
        let contents: Vec<Vec<u8>> = files.iter().map(|f| f.2.clone()).collect();
        let wire = render(&body, &contents, step);
        prop_assert_eq!(wire.len() as u64, body.content_length());

        let escape = |s: &str| s.replace('"', "%22").replace('\r', "%0D").replace('\n', "%0A");
        let parsed = parse_with_multer(wire, body.boundary());
        let mut expected: Vec<ParsedPart> = fields
            .iter()
            .map(|(n, v)| ParsedPart { name: escape(n), filename: None, content_type: None, bytes: v.clone().into_bytes() })
            .collect();
        for (name, filename, bytes) in &files {
            let filename = basename(filename);
            expected.push(ParsedPart {
                name: escape(name),
                filename: Some(escape(filename)),
                content_type: Some(mime_guess::from_path(filename).first_or_octet_stream().to_string()),
                bytes: bytes.clone(),
            });
        }
        prop_assert_eq!(parsed, expected);
    }
}

#[test]
fn one_exact_allocation_holds_the_type_and_the_framing() {
    let body = Form::new()
        .text("a\"\r\nb", "v\r\n")
        .file(FilePart::new("f\"", "dir/x\ny.png", 3))
        .file(FilePart::new("e", "z", 0))
        .build()
        .unwrap();
    assert_eq!(body.text.capacity(), body.text.len());
    assert_eq!(body.segments.capacity(), body.segments.len());
    assert!(body
        .content_type()
        .starts_with("multipart/form-data; boundary=uploadtask-"));
    assert!(matches!(
        FilePart::new("f", "a/b.png", 1).content_type,
        Cow::Borrowed("image/png")
    ));
}

#[test]
fn guessed_types_match_mime_guess_with_the_last_one_kept() {
    let names = [
        "a.png", "b.png", ".bashrc", ".aa", "..aa", "..", "x.tar.gz", "a.", "noext", "c.PNG", "d.json", "e.png",
    ];
    for name in names.iter().chain(names.iter().rev()) {
        let expected = mime_guess::from_path(name).first_or_octet_stream();
        assert_eq!(
            FilePart::new("f", *name, 1).content_type,
            expected.essence_str(),
            "{name}"
        );
    }
}
