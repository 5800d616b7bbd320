//! Many concurrent uploads through one client: N uploads of one file, all
//! in flight together (up to the engine's cap), waiting on each as a Future.
//!
//! Run: `cargo run --release -p uploadtask --example many -- URL FILE [N]`

use std::time::Instant;

use uploadtask::{Client, ClientConfig, EngineConfig, UploadOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: many URL FILE [N]");
        std::process::exit(2);
    };
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let client = Client::new(ClientConfig {
        engine: EngineConfig {
            max_in_flight: 1000,
            raise_fd_limit: true,
            ..EngineConfig::default()
        },
        roots: uploadtask::Roots::new().allow_plain_paths(),
        ..ClientConfig::default()
    })
    .unwrap_or_else(|e| {
        eprintln!("cannot start the engine: {e}");
        std::process::exit(1);
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|i| client.upload_file(UploadOptions::new(&url, &file, "file").form_data("i", i.to_string())))
        .collect();
    let mut failed = 0;
    for task in tasks {
        if let Err(e) = task.wait() {
            failed += 1;
            eprintln!("fail {}: {e}", e.code());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{count} uploads, {failed} failed, {seconds:.2} s, {:.0} uploads/s",
        count as f64 / seconds
    );
}
