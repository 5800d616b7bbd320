//! `uploadtask demo [FILE...]`: a receiver on loopback, an upload with a
//! progress bar, and the proof that what arrived is what was sent.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::serve::{Receiver, ReceiverConfig, UploadSummary};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use uploadtask::{Client, ClientConfig, UploadOptions};

use super::args::bytes;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Files to upload; without any, a sample file is made (and removed after).
    files: Vec<PathBuf>,
    /// Size of the sample file: bytes, or with a suffix (64M, 1G).
    #[arg(long, default_value = "256M", value_parser = super::args::parse_size)]
    size: u64,
}

/// Writes `size` pseudo-random bytes to `path`; returns their hex sha256.
fn make_sample(path: &Path, size: u64) -> std::io::Result<String> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        hasher.update(&block[..n]);
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

pub fn run(args: DemoArgs) -> i32 {
    let receiver = match Receiver::start(ReceiverConfig::default()) {
        Ok(receiver) => receiver,
        Err(e) => {
            eprintln!("uploadtask: cannot start the receiver: {e}");
            return 1;
        }
    };
    eprintln!("receiver listening on http://{}/", receiver.addr());
    let sample_dir = std::env::temp_dir().join(format!("uploadtask-demo-{}", std::process::id()));
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if args.files.is_empty() {
        let path = sample_dir.join("sample.bin");
        let made = std::fs::create_dir_all(&sample_dir).and_then(|_| make_sample(&path, args.size));
        match made {
            Ok(digest) => {
                eprintln!("made a sample file of {} at {}", bytes(args.size), path.display());
                files.push((path, digest));
            }
            Err(e) => {
                eprintln!("uploadtask: cannot make a sample file in {}: {e}", sample_dir.display());
                return 1;
            }
        }
    } else {
        for path in &args.files {
            match sha256_of(path) {
                Ok(digest) => files.push((path.clone(), digest)),
                Err(e) => {
                    eprintln!("uploadtask: {}: {e}", path.display());
                    return 1;
                }
            }
        }
    }
    let status = upload_and_check(&receiver, &files);
    if args.files.is_empty() {
        let _ = std::fs::remove_dir_all(&sample_dir);
    }
    status
}

fn upload_and_check(receiver: &Receiver, files: &[(PathBuf, String)]) -> i32 {
    let client = match Client::new(ClientConfig {
        roots: uploadtask::Roots::new().allow_plain_paths(),
        ..ClientConfig::default()
    }) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("uploadtask: cannot start the engine: {e}");
            return 1;
        }
    };
    let url = format!("http://{}/demo", receiver.addr());
    let terminal = std::io::stderr().is_terminal();
    let mut status = 0;
    for (path, digest) in files {
        let bar = if terminal {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("[{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let shown = bar.clone();
        let started = Instant::now();
        let task = client.upload_file(
            UploadOptions::new(&url, path.to_string_lossy(), "file")
                .form_data("demo", "true")
                .on_progress_update(move |p| {
                    shown.set_length(p.total_bytes_expected_to_send);
                    shown.set_position(p.total_bytes_sent);
                }),
        );
        let outcome = task.wait();
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let response = match outcome {
            Ok(response) => response,
            Err(e) => {
                println!("{}: fail {}: {}", path.display(), e.code(), e.message);
                status = 1;
                continue;
            }
        };
        let Ok(summary) = serde_json::from_str::<UploadSummary>(&response.data) else {
            println!(
                "{}: unexpected answer {} {}",
                path.display(),
                response.status_code,
                response.data
            );
            status = 1;
            continue;
        };
        let Some(file) = summary.files.first() else {
            println!("{}: the receiver got no file", path.display());
            status = 1;
            continue;
        };
        let matches = &file.sha256 == digest;
        println!(
            "{}: uploaded {} in {seconds:.2} s ({}/s)",
            path.display(),
            bytes(file.size),
            bytes((file.size as f64 / seconds) as u64)
        );
        println!("  receiver: {} bytes, sha256 {}", file.size, file.sha256);
        println!(
            "  source:   sha256 {digest} — {}",
            if matches { "matches" } else { "MISMATCH" }
        );
        if !matches {
            status = 1;
        }
    }
    status
}
