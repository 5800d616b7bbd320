//! Object stores over the uploadtask engine.
//!
//! - **S3 multipart uploads** (any S3-compatible store): one file cut into
//!   parts ([`plan`]), several parts in flight at once on the engine, each
//!   part a window of the one open file; a CRC32C checksum per part; each
//!   part retried on its own; the store's upload aborted on `cancel` and
//!   on a final failure; resumed after a restart from the parts the store
//!   lists ([`multipart`] decides, [`run`] drives).
//! - **Credentials**: SigV4 signing with keys ([`sigv4`], checked against
//!   AWS's published vectors), or URLs presigned by the app's server
//!   ([`run::Presigner`]), so a device never holds keys.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use uploadtask_engine::{Engine, EngineConfig};
//! use uploadtask_objects::run::{upload, Auth, S3Upload};
//! use uploadtask_objects::sigv4::Credentials;
//! use uploadtask_objects::target::Target;
//!
//! let engine = Engine::new(EngineConfig::default()).unwrap();
//! let target = Target::aws("my-bucket", "backups/disk.img", "eu-west-1");
//! let keys = Credentials::from_env().expect("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
//! let mut job = S3Upload::new(target, Auth::Keys(keys), "disk.img");
//! job.parallel = 8;
//! let (response, summary) = upload(&engine, &job, &AtomicBool::new(false), |sent, total| {
//!     eprintln!("{sent} of {total}");
//! })
//! .unwrap();
//! println!("{} in {} parts", response.status, summary.parts);
//! ```

pub mod multipart;
pub mod plan;
pub mod presign;
pub mod run;
pub mod sigv4;
pub mod target;
pub mod xml;
