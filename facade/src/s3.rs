//! `uploadFile` with an `s3://BUCKET/KEY` url: an S3 multipart upload
//! (`uploadtask-objects`) run on a thread of its own over the client's
//! engine, its parts in flight together; the task hears of it as of any
//! upload (progress as the sum of the parts' bytes, one outcome) and
//! `abort()` stops the parts and aborts the store's upload.

use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use uploadtask_engine::progress::{percent, Progress};
use uploadtask_engine::{Engine, ErrorKind, Event, EventSink, UploadError};
use uploadtask_objects::presign::EndpointPresigner;
use uploadtask_objects::run::{upload_file, Auth, S3Upload};
use uploadtask_objects::sigv4::Credentials;
use uploadtask_objects::target::{split_s3_url, Target};

use crate::paths::Roots;
use crate::resume::{ResumeStore, UploadIds};
use crate::task::TaskSink;
use crate::UploadOptions;

/// An S3 upload ready to run: the job and its open file.
pub(crate) struct Job {
    job: S3Upload,
    file: File,
}

fn invalid(message: impl Into<String>) -> UploadError {
    UploadError::new(ErrorKind::InvalidArgument, message.into())
}

/// Reads `options` (an `s3://BUCKET/KEY` url, `filePath`, the `s3`
/// settings) and opens the file through `roots`; presigning questions go
/// through `engine`.
pub(crate) fn job(
    options: &UploadOptions,
    roots: &Roots,
    store: &Arc<dyn ResumeStore>,
    engine: &Engine,
) -> Result<Job, UploadError> {
    let (bucket, key) = split_s3_url(&options.url).unwrap_or_default();
    if !options.files.is_empty() || !options.form_data.is_empty() {
        return Err(invalid("an S3 upload sends filePath alone: no files, no formData"));
    }
    let settings = options.s3.clone().unwrap_or_default();
    let region = settings
        .region
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .unwrap_or_else(|| "us-east-1".into());
    let target = Target::new(settings.endpoint.as_deref(), bucket, key, &region)
        .map_err(|why| invalid(format!("{why}: {}", options.url)))?;
    let auth = if settings.anonymous {
        Auth::Anonymous
    } else if let Some(url) = settings.presign_url {
        let mut presigner = EndpointPresigner::new(engine.clone(), url);
        presigner.headers = options.header.clone();
        Auth::Presigned(Arc::new(presigner))
    } else {
        let keys = match (settings.access_key_id, settings.secret_access_key) {
            (Some(id), Some(secret)) => Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: settings.session_token,
            },
            (None, None) => Credentials::from_env().ok_or_else(|| {
                invalid("no S3 credentials: s3.accessKeyId and s3.secretAccessKey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            })?,
            _ => return Err(invalid("s3.accessKeyId and s3.secretAccessKey go together")),
        };
        Auth::Keys(keys)
    };
    let resolved = roots.resolve(&options.file_path)?;
    let source = roots.open(&options.file_path)?;
    let file = source
        .file()
        .and_then(|f| f.try_clone().ok())
        .ok_or_else(|| UploadError::new(ErrorKind::File, format!("cannot open {}", options.file_path)))?;
    let mut job = S3Upload::new(target, auth, resolved.path);
    job.parallel = settings.parallel.unwrap_or(4).max(1);
    job.part_size = settings.part_size;
    job.retry = options.retry.as_ref().map(crate::RetryOptions::policy);
    job.store = Some(Arc::new(UploadIds(Arc::clone(store))));
    Ok(Job { job, file })
}

/// Runs `job` on a thread of its own; `sink` hears of it.
pub(crate) fn start(engine: Engine, job: Job, cancel: Arc<AtomicBool>, sink: TaskSink) {
    let sink = Arc::new(Mutex::new(Some(sink)));
    let held = Arc::clone(&sink);
    let run = move || {
        let Some(mut sink) = held.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let result = upload_file(&engine, &job.job, job.file, &cancel, |sent, total| {
            sink.event(Event::Progress(Progress {
                progress: percent(sent, total),
                total_bytes_sent: sent,
                total_bytes_expected_to_send: total,
            }));
        });
        sink.event(Event::Done(result.map(|(response, _)| response)));
    };
    if let Err(e) = std::thread::Builder::new().name("uploadtask-s3".into()).spawn(run) {
        if let Some(mut sink) = sink.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let error = UploadError::new(ErrorKind::ResourceExhausted, format!("cannot start the S3 upload: {e}"));
            sink.event(Event::Done(Err(error)));
        }
    }
}
