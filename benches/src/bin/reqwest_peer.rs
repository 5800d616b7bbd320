//! reqwest as a peer for the comparison harness.
//!
//! `reqwest_peer single URL FILE` — one upload with `multipart::Part::file`.
//! `reqwest_peer many URL SIZE TOTAL CONCURRENCY` — TOTAL uploads of SIZE
//! bytes from memory, CONCURRENCY in flight.
//! With `REQWEST_CA=ca.pem` in the environment, that root is trusted too;
//! HTTP/2 is used where TLS negotiates it (ALPN), `REQWEST_HTTP=1.1`
//! keeps HTTP/1.1 and `REQWEST_HTTP=2` speaks HTTP/2 with prior knowledge.

use futures_util::stream::StreamExt;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let failed = runtime.block_on(async {
        // `REQWEST_CA=ca.pem` trusts that root too (the TLS comparison).
        let mut builder = reqwest::Client::builder();
        if let Ok(path) = std::env::var("REQWEST_CA") {
            let pem = std::fs::read(&path).expect("REQWEST_CA");
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"));
        }
        match std::env::var("REQWEST_HTTP").as_deref() {
            Ok("1.1") => builder = builder.http1_only(),
            Ok("2") => builder = builder.http2_prior_knowledge(),
            _ => {}
        }
        let client = builder.build().expect("client");
        match args.first().map(String::as_str) {
            Some("single") => {
                let part = reqwest::multipart::Part::file(&args[2]).await.expect("file");
                let form = reqwest::multipart::Form::new().part("file", part);
                let response = client.post(&args[1]).multipart(form).send().await.expect("send");
                usize::from(!response.status().is_success())
            }
            Some("many") => {
                let size: usize = args[2].parse().expect("size");
                let total: usize = args[3].parse().expect("total");
                let concurrency: usize = args[4].parse().expect("concurrency");
                let payload = bytes::Bytes::from(vec![0x33u8; size]);
                let url = args[1].clone();
                futures_util::stream::iter(0..total)
                    .map(|_| {
                        let client = client.clone();
                        let url = url.clone();
                        let part = reqwest::multipart::Part::stream(payload.clone()).file_name("s.bin");
                        async move {
                            let form = reqwest::multipart::Form::new().part("file", part);
                            match client.post(url).multipart(form).send().await {
                                Ok(r) => r.bytes().await.is_err() as usize,
                                Err(_) => 1,
                            }
                        }
                    })
                    .buffer_unordered(concurrency)
                    .fold(0, |failed, f| async move { failed + f })
                    .await
            }
            _ => {
                eprintln!("usage: reqwest_peer single URL FILE | many URL SIZE TOTAL CONCURRENCY");
                std::process::exit(2);
            }
        }
    });
    std::process::exit(i32::from(failed > 0));
}
