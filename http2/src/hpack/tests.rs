//! RFC 7541 Appendix C, and the decoder's bounds.

use super::*;

/// Bytes from hex, spaces ignored (as the RFC prints them).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

type Fields = Vec<(String, String)>;

fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Fields, HpackError> {
    let mut fields = Vec::new();
    decoder.decode(block, |n, v| {
        fields.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ))
    })?;
    Ok(fields)
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// A block in hex, the fields it decodes to, the table's size after.
type Step<'a> = (&'a str, &'a [(&'a str, &'a str)], usize);

/// Decodes each block in turn, checking its fields and the table's size after.
fn sequence(table_size: usize, steps: &[Step<'_>]) {
    let mut decoder = Decoder::new(table_size, 64 * 1024);
    for (i, (block, expected, size)) in steps.iter().enumerate() {
        assert_eq!(
            decode(&mut decoder, &hex(block)).unwrap(),
            fields(expected),
            "block {i}"
        );
        assert_eq!(decoder.table().size(), *size, "table size after block {i}");
    }
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const RES1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RES2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
    ("location", "https://www.example.com"),
];
const RES3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
];

#[test]
fn c2_single_fields() {
    let mut decoder = Decoder::new(4096, 16 * 1024);
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(
        decode(&mut decoder, &block).unwrap(),
        fields(&[("custom-key", "custom-header")])
    );
    assert_eq!(decoder.table().size(), 55);
    let mut decoder = Decoder::new(4096, 16 * 1024);
    let block = hex("040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(
        decode(&mut decoder, &block).unwrap(),
        fields(&[(":path", "/sample/path")])
    );
    assert!(decoder.table().is_empty());
    let block = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    assert_eq!(decode(&mut decoder, &block).unwrap(), fields(&[("password", "secret")]));
    assert!(decoder.table().is_empty());
    assert_eq!(decode(&mut decoder, &hex("82")).unwrap(), fields(&[(":method", "GET")]));
}

#[test]
fn c3_requests_without_huffman() {
    sequence(
        4096,
        &[
            ("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQ1, 57),
            ("8286 84be 5808 6e6f 2d63 6163 6865", REQ2, 110),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                REQ3,
                164,
            ),
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    sequence(
        4096,
        &[
            ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ1, 57),
            ("8286 84be 5886 a8eb 1064 9cbf", REQ2, 110),
            ("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQ3, 164),
        ],
    );
}

#[test]
fn c5_responses_without_huffman_evict_the_oldest() {
    sequence(
        256,
        &[
            (
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a \
                 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                RES1,
                222,
            ),
            ("4803 3330 37c1 c0bf", RES2, 222),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 \
                 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 \
                 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
                RES3,
                215,
            ),
        ],
    );
}

#[test]
fn c6_responses_with_huffman_evict_the_oldest() {
    sequence(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e \
                 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                RES1,
                222,
            ),
            ("4883 640e ffc1 c0bf", RES2, 222),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 \
                 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed \
                 4ee5 b106 3d50 07",
                RES3,
                215,
            ),
        ],
    );
}

#[test]
fn integers_of_c1() {
    let mut out = Vec::new();
    encode_integer(10, 5, 0, &mut out);
    assert_eq!(out, [0x0a]);
    out.clear();
    encode_integer(1337, 5, 0, &mut out);
    assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    let mut at = 0;
    assert_eq!(decode_integer(&out, &mut at, 5), Ok(1337));
    assert_eq!(at, 3);
    out.clear();
    encode_integer(42, 8, 0, &mut out);
    assert_eq!(out, [42]);
    // Many continuation bytes that add nothing: refused, not shifted out.
    let mut zeros = vec![0x1f];
    zeros.extend_from_slice(&[0x80; 20]);
    zeros.push(0);
    assert_eq!(decode_integer(&zeros, &mut 0, 5), Err(HpackError::IntegerOverflow));
    // A continuation that never ends, and one too large.
    assert_eq!(decode_integer(&[0x1f, 0x80], &mut 0, 5), Err(HpackError::Truncated));
    assert_eq!(
        decode_integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut 0, 5),
        Err(HpackError::IntegerOverflow)
    );
}

#[test]
fn the_encoder_round_trips_through_the_decoder() {
    let mut encoder = Encoder::default();
    let mut block = Vec::new();
    let sent = fields(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "upload.example.com:8443"),
        (":path", "/files?id=7"),
        ("content-type", "multipart/form-data; boundary=x"),
        ("content-length", "16384"),
        ("x-empty", ""),
        ("x-bytes", "\u{1}\u{7f}ü"),
    ]);
    for (n, v) in &sent {
        encoder.encode(n.as_bytes(), v.as_bytes(), &mut block);
    }
    let mut decoder = Decoder::new(4096, 16 * 1024);
    assert_eq!(decode(&mut decoder, &block).unwrap(), sent);
    assert!(decoder.table().is_empty(), "the encoder never indexes");
    // :method POST and :scheme https are whole static entries: one byte each.
    assert_eq!(&block[..2], &[0x83, 0x87]);
}

#[test]
fn table_size_updates_only_first_and_within_the_announced_size() {
    let mut decoder = Decoder::new(4096, 16 * 1024);
    // 0x3f 0xe1 0x1f = 4096: allowed; then a field.
    assert_eq!(
        decode(&mut decoder, &hex("3fe11f 82")).unwrap(),
        fields(&[(":method", "GET")])
    );
    // 4097 is more than announced.
    assert_eq!(
        decode(&mut decoder, &hex("3fe21f")),
        Err(HpackError::BadTableSizeUpdate)
    );
    // After a field.
    assert_eq!(decode(&mut decoder, &hex("82 20")), Err(HpackError::BadTableSizeUpdate));
    // Down to 0 empties the table.
    decode(
        &mut decoder,
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
    )
    .unwrap();
    assert_eq!(decoder.table().len(), 1);
    decode(&mut decoder, &hex("20")).unwrap();
    assert!(decoder.table().is_empty());
}

#[test]
fn bad_indexes_and_truncation_are_refused() {
    let mut decoder = Decoder::new(4096, 16 * 1024);
    assert_eq!(decode(&mut decoder, &hex("80")), Err(HpackError::BadIndex(0)));
    assert_eq!(decode(&mut decoder, &hex("be")), Err(HpackError::BadIndex(62)));
    assert_eq!(decode(&mut decoder, &hex("400a 6375")), Err(HpackError::Truncated));
    assert_eq!(decode(&mut decoder, &hex("04")), Err(HpackError::Truncated));
}

#[test]
fn a_list_too_large_fails_the_block_but_keeps_the_table_in_step() {
    // Room for one small field only.
    let mut decoder = Decoder::new(4096, 60);
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572 82 82");
    assert_eq!(decode(&mut decoder, &block), Err(HpackError::ListTooLarge));
    // The literal was indexed all the same: the next block can refer to it.
    assert_eq!(
        decode(&mut decoder, &hex("be")).unwrap(),
        fields(&[("custom-key", "custom-header")])
    );
}

#[test]
fn an_entry_larger_than_the_table_empties_it() {
    let mut table = DynamicTable::new(64);
    table.insert(b"a", b"b");
    assert_eq!(table.size(), 34);
    table.insert(&[b'n'; 40], b"v");
    assert!(table.is_empty());
    assert_eq!(table.size(), 0);
}
