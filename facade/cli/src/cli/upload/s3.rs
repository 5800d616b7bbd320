//! `uploadtask upload s3://BUCKET/KEY FILE`: an S3 multipart upload with
//! parts in flight at once, resumable after an interruption.

use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use uploadtask::resume::UploadIds;
use uploadtask_objects::presign::EndpointPresigner;
use uploadtask_objects::run::{upload, Auth, S3Upload};
use uploadtask_objects::sigv4::Credentials;
use uploadtask_objects::target::{split_s3_url, Target};

use super::{build, one_line, parse, usage, UploadArgs, HTTP_ERROR};
use crate::cli::args::ProgressMode;

/// S3 options of `upload` (with an `s3://BUCKET/KEY` URL).
#[derive(clap::Args, Debug, Default)]
pub struct S3Args {
    /// With s3://: the endpoint of an S3-compatible store (path-style
    /// addressing); default $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL, else
    /// AWS.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// With s3://: the region (default $AWS_REGION, $AWS_DEFAULT_REGION,
    /// else us-east-1).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// With s3://: parts in flight at once (default 4).
    #[arg(long, value_name = "N", default_value_t = 4)]
    parallel: usize,
    /// With s3://: bytes per part, 5M to 5G (default 8M, larger for files
    /// above 78 GiB so that 10,000 parts hold them).
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::args::parse_size)]
    part_size: Option<u64>,
    /// With s3://: send no credentials (a store that checks none).
    #[arg(long)]
    no_sign_request: bool,
    /// With s3://: no keys here; each request's URL is asked of this
    /// server, which holds them: GET URL?method=M&uploadId=…&partNumber=…
    /// answered with the presigned URL (text, or JSON {"url": …}).
    #[arg(long, value_name = "URL", conflicts_with = "no_sign_request")]
    presign_url: Option<String>,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Runs the upload; the exit status.
pub fn run(mut args: UploadArgs) -> i32 {
    let Some((bucket, key)) = split_s3_url(&args.url) else {
        return usage(format!("not an s3:// URL: {}", args.url));
    };
    if args.files.len() != 1 {
        return usage("s3:// takes exactly one FILE".into());
    }
    let path = std::path::PathBuf::from(&args.files[0]);
    let mut key = key.to_string();
    if key.is_empty() || key.ends_with('/') {
        // As `aws s3 cp FILE s3://BUCKET/DIR/`: the file's name.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        key.push_str(&name);
    }
    let s3 = std::mem::take(&mut args.s3);
    let region = s3
        .region
        .or_else(|| env(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = s3
        .endpoint
        .or_else(|| env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]));
    let target = match Target::new(endpoint.as_deref(), bucket, &key, &region) {
        Ok(target) => target,
        Err(why) => return usage(format!("{why}: {}", args.url)),
    };
    // Keys unless no request is signed here.
    let keys = if s3.no_sign_request || s3.presign_url.is_some() {
        None
    } else {
        match Credentials::from_env() {
            Some(keys) => Some(keys),
            None => {
                return usage(
                    "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --no-sign-request)".into(),
                )
            }
        }
    };
    // The engine's settings (TLS, proxies, timeouts, HTTP version) as for
    // any upload, to the store's endpoint.
    args.url = target.url(&[]);
    let (args, mut job) = match parse(args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let parallel = s3.parallel.max(1);
    // The parts at once, and a presigning question or an abort beside them.
    job.config.engine.max_in_flight = parallel + 2;
    let client = match build(&job) {
        Ok(client) => client,
        Err(status) => return status,
    };
    let auth = match (s3.presign_url, keys) {
        (Some(url), _) => Auth::Presigned(Arc::new(EndpointPresigner::new(client.engine().clone(), url))),
        (None, Some(keys)) => Auth::Keys(keys),
        (None, None) => Auth::Anonymous,
    };
    let mut s3_job = S3Upload::new(target, auth, path);
    s3_job.parallel = parallel;
    s3_job.part_size = s3.part_size;
    s3_job.store = Some(Arc::new(UploadIds(uploadtask::resume::default_store())));
    let mode = args.progress.unwrap_or(if std::io::stderr().is_terminal() {
        ProgressMode::Bar
    } else {
        ProgressMode::None
    });
    let bar = (mode == ProgressMode::Bar).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let cancel = AtomicBool::new(false);
    let outcome = upload(client.engine(), &s3_job, &cancel, |sent, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(sent);
        } else if mode == ProgressMode::Json {
            let percent = (sent * 100).checked_div(total).unwrap_or(100);
            eprintln!("{{\"progress\":{percent},\"totalBytesSent\":{sent},\"totalBytesExpectedToSend\":{total}}}");
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match outcome {
        Ok((response, summary)) => {
            if args.verbose {
                eprintln!(
                    "* {} parts, {} of them kept from an earlier run; {} part requests",
                    summary.parts, summary.resumed_parts, summary.part_requests
                );
            }
            let body = String::from_utf8_lossy(&response.body);
            if args.json {
                let line = serde_json::json!({
                    "success": { "statusCode": response.status, "data": body },
                    "parts": summary.parts,
                    "resumedParts": summary.resumed_parts,
                });
                println!("{line}");
            } else {
                println!("{} {}", response.status, one_line(&body));
            }
            if args.fail && response.status >= 400 {
                HTTP_ERROR
            } else {
                0
            }
        }
        Err(error) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({ "fail": { "data": error.message, "code": error.code() } })
                );
            } else {
                eprintln!("fail {}: {}", error.code(), error.message);
            }
            1
        }
    }
}
