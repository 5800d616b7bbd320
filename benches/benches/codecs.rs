//! Codec micro-benchmarks, in bytes/s: request-head writing, response-head
//! parsing, chunked decoding, and framing a form whose cost must not grow
//! with the file size (1 KiB and 1 GiB file parts).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uploadtask_http1::request::{RequestHead, Target};
use uploadtask_http1::{ChunkedDecoder, Limits, ParseStatus, ResponseHeadParser};
use uploadtask_multipart::{FilePart, Form};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 10:00:00 GMT\r\n\
Content-Type: application/json\r\nContent-Length: 27\r\nConnection: keep-alive\r\nX-Request-Id: 8c6f2f8e-5b1e-4c1a-9a55-0f3f0e3b8a11\r\n\
Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n\r\n";

fn head_writing(c: &mut Criterion) {
    let target = Target::parse("https://upload.example.com:8443/v1/files?bucket=photos").unwrap();
    let write = |out: &mut Vec<u8>| {
        out.clear();
        RequestHead::new(
            &target,
            "multipart/form-data; boundary=uploadtask-0123456789abcdef0123456789abcdef",
            123456,
        )
        .header("Authorization", "Bearer abcdefghijklmnopqrstuvwxyz")
        .header("X-Token", "t")
        .write(out)
        .unwrap();
    };
    let mut out = Vec::with_capacity(512);
    write(&mut out);
    let mut group = c.benchmark_group("request_head");
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("write", |b| b.iter(|| write(black_box(&mut out))));
    group.finish();
}

fn response_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("response_head");
    group.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            let mut parser = ResponseHeadParser::new(Limits::default());
            match parser.parse(black_box(RESPONSE)).unwrap() {
                ParseStatus::Complete { head, .. } => head.headers.len(),
                _ => unreachable!(),
            }
        })
    });
    group.finish();
}

fn chunked_decoding(c: &mut Criterion) {
    let mut wire = Vec::new();
    for _ in 0..64 {
        wire.extend_from_slice(b"1000\r\n");
        wire.extend(std::iter::repeat_n(b'x', 4096));
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    // The decoder parses the framing (size lines, CRLFs) and hands body
    // bytes back as ranges without touching them: the throughput counts
    // chunks, not the 256 KiB they carry.
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Elements(64));
    group.bench_function("framing_of_64_chunks_of_4KiB", |b| {
        b.iter(|| {
            let mut decoder = ChunkedDecoder::new(&Limits::default());
            let mut input = black_box(&wire[..]);
            let mut body = 0;
            while !decoder.is_done() {
                let step = decoder.decode(input).unwrap();
                body += step.body.len();
                input = &input[step.consumed..];
            }
            body
        })
    });
    group.finish();
}

fn form_framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("form_framing");
    for (label, len) in [("1KiB", 1u64 << 10), ("1GiB", 1u64 << 30)] {
        // Forms per second: the framing never touches the file's bytes, so
        // the time per form is the figure, and it must not grow with them.
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("one_file_part", label), &len, |b, &len| {
            b.iter(|| {
                Form::new()
                    .text("user", "42")
                    .file(FilePart::new("file", "photo.png", black_box(len)))
                    .boundary("uploadtask-0123456789abcdef0123456789abcdef")
                    .build()
                    .unwrap()
                    .content_length()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, head_writing, response_parsing, chunked_decoding, form_framing);
criterion_main!(benches);
