//! S3 multipart uploads against moto (an S3 implementation no one here
//! wrote) in server mode on 127.0.0.1: sizes around the part size arrive
//! byte-exact; SigV4 keys that moto checks, a wrong secret refused with a
//! clear 403; parts presigned by an app server that holds the keys; a
//! program killed mid-upload resumes with only the missing parts; no
//! multipart upload is left behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use uploadtask_engine::{Engine, EngineConfig};
use uploadtask_objects::run::{upload, Auth, Presigner, S3Upload};
use uploadtask_objects::sigv4::{self, Credentials, SignRequest};
use uploadtask_objects::target::Target;

const BIN: &str = env!("CARGO_BIN_EXE_uploadtask");
const MIB: usize = 1 << 20;

/// `moto_server` on a free port of 127.0.0.1, stopped when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// With `checked_after`: moto checks credentials after that many
    /// requests (the first ones make a user and its keys).
    fn start(checked_after: Option<u32>) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new("moto_server");
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = checked_after {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = command
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
        let moto = Moto { child, port };
        for _ in 0..400 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("moto_server did not start");
    }

    fn endpoint(&self) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}", self.port)).unwrap()
    }

    /// An IAM user allowed everything, and its keys (moto's own IAM).
    fn keys(&self) -> Credentials {
        let script = format!(
            "import boto3\n\
             iam = boto3.client('iam', endpoint_url='http://127.0.0.1:{}', region_name='us-east-1', aws_access_key_id='a', aws_secret_access_key='b')\n\
             iam.create_user(UserName='u')\n\
             iam.put_user_policy(UserName='u', PolicyName='all', PolicyDocument='{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}}]}}')\n\
             k = iam.create_access_key(UserName='u')['AccessKey']\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])\n",
            self.port
        );
        let out = Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let (id, secret) = text.trim().split_once(' ').unwrap();
        Credentials::new(id, secret)
    }

    /// A request to moto (signed with `keys` if given): status and body.
    fn request(&self, method: &str, path: &str, query: &[(&str, &str)], keys: Option<&Credentials>) -> (u16, Vec<u8>) {
        let host = format!("127.0.0.1:{}", self.port);
        let mut head = format!("{method} {path}");
        for (i, (k, v)) in query.iter().enumerate() {
            head.push(if i == 0 { '?' } else { '&' });
            head.push_str(&format!("{}={}", sigv4::encode(k, true), sigv4::encode(v, true)));
        }
        head.push_str(&format!(" HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n"));
        if let Some(keys) = keys {
            let date = sigv4::amz_date(SystemTime::now());
            let signed = keys.sign(&SignRequest {
                method,
                host: &host,
                path,
                query,
                headers: &[],
                payload_sha256: sigv4::EMPTY_SHA256,
                region: "us-east-1",
                service: "s3",
                amz_date: &date,
            });
            for (n, v) in signed.headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(&format!("Authorization: {}\r\n", signed.authorization));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let status = String::from_utf8_lossy(&response[9..12]).parse().unwrap();
        (status, response[end..].to_vec())
    }

    /// ListMultipartUploads: the uploads the bucket holds.
    fn uploads_left(&self, bucket: &str, keys: Option<&Credentials>) -> usize {
        let (status, body) = self.request("GET", &format!("/{bucket}"), &[("uploads", "")], keys);
        assert_eq!(status, 200);
        uploadtask_objects::xml::all(&String::from_utf8_lossy(&body), "UploadId").count()
    }

    fn sha256_of(&self, bucket: &str, key: &str, keys: Option<&Credentials>) -> String {
        let (status, body) = self.request("GET", &format!("/{bucket}/{key}"), &[], keys);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        hex::encode(Sha256::digest(&body))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("uploadtask-s3-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

/// A file of `len` bytes that differ from part to part; its sha256.
fn file(dir: &Path, name: &str, len: usize) -> (PathBuf, String) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| ((i / 4099) as u8) ^ (i as u8).wrapping_mul(31))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, hex::encode(Sha256::digest(&bytes)))
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default()).unwrap()
}

#[test]
fn sizes_around_the_part_size_arrive_byte_exact_and_leave_no_upload() {
    let moto = Moto::start(None);
    assert_eq!(moto.request("PUT", "/bkt", &[], None).0, 200);
    let dir = temp_dir("sizes");
    let engine = engine();
    for len in [0, 1, 5 * MIB - 1, 5 * MIB, 5 * MIB + 1, 12_345_678] {
        let (path, digest) = file(&dir.0, &format!("f{len}"), len);
        let key = format!("dir/f {len}.bin");
        let target = Target::at(moto.endpoint(), "bkt", &key, "us-east-1");
        let mut job = S3Upload::new(target, Auth::Anonymous, &path);
        job.part_size = Some(5 << 20);
        job.parallel = 3;
        let seen = Mutex::new(Vec::new());
        let (response, summary) = upload(&engine, &job, &AtomicBool::new(false), |sent, total| {
            seen.lock().unwrap().push((sent, total));
        })
        .unwrap();
        assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
        assert_eq!(summary.parts, (len.div_ceil(5 * MIB)).max(1) as u32);
        assert_eq!(
            moto.sha256_of("bkt", &sigv4::encode(&key, false), None),
            digest,
            "{len} bytes"
        );
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "progress rises");
        assert!(seen.iter().all(|&(sent, total)| total == len as u64 && sent <= total));
        if len > 0 {
            assert_eq!(seen.last().map(|p| p.0), Some(len as u64));
        }
    }
    assert_eq!(moto.uploads_left("bkt", None), 0);
    engine.shutdown();
}

#[test]
fn sigv4_keys_moto_checks_succeed_and_a_wrong_secret_is_a_clear_403() {
    let moto = Moto::start(Some(3));
    let keys = moto.keys();
    assert_eq!(moto.request("PUT", "/sec", &[], Some(&keys)).0, 200);
    let dir = temp_dir("sigv4");
    let (path, digest) = file(&dir.0, "f", 11 * MIB);
    let engine = engine();
    let target = Target::at(moto.endpoint(), "sec", "k", "us-east-1");
    let mut job = S3Upload::new(target.clone(), Auth::Keys(keys.clone()), &path);
    job.part_size = Some(5 << 20);
    let (response, _) = upload(&engine, &job, &AtomicBool::new(false), |_, _| {}).unwrap();
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(moto.sha256_of("sec", "k", Some(&keys)), digest);
    let wrong = Credentials::new(keys.access_key_id.clone(), "not-the-secret");
    let job = S3Upload::new(target, Auth::Keys(wrong), &path);
    let (response, _) = upload(&engine, &job, &AtomicBool::new(false), |_, _| {}).unwrap();
    assert_eq!(response.status, 403);
    assert!(String::from_utf8_lossy(&response.body).contains("SignatureDoesNotMatch"));
    assert_eq!(moto.uploads_left("sec", Some(&keys)), 0);
    engine.shutdown();
}

/// The app's server: it holds the keys and presigns each request the
/// device asks for (the device never sees them).
struct AppServer {
    keys: Credentials,
    target: Target,
    asked: Mutex<Vec<String>>,
}

impl Presigner for AppServer {
    fn presign(&self, method: &str, query: &[(&str, &str)]) -> Result<String, String> {
        self.asked.lock().unwrap().push(method.to_string());
        let host = self.target.host();
        let path = self.target.path();
        let date = sigv4::amz_date(SystemTime::now());
        let signed = self.keys.presign_query(
            &SignRequest {
                method,
                host: &host,
                path: &path,
                query,
                headers: &[],
                payload_sha256: sigv4::UNSIGNED_PAYLOAD,
                region: &self.target.region,
                service: "s3",
                amz_date: &date,
            },
            900,
        );
        let pairs: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Ok(self.target.url(&pairs))
    }
}

#[test]
fn parts_presigned_by_the_app_server_upload_without_keys_on_the_device() {
    // moto's server cannot check presigned URLs while it checks
    // credentials (it fails them with a 500 for want of an Authorization
    // header, boto3's own URLs too): here it checks none, and the
    // signatures are those of AWS's published presigning example (unit
    // test in the signer).
    let moto = Moto::start(None);
    let keys = Credentials::new("AKIDEXAMPLE", "app-server-secret");
    assert_eq!(moto.request("PUT", "/pre", &[], None).0, 200);
    let dir = temp_dir("presigned");
    let (path, digest) = file(&dir.0, "f", 13 * MIB);
    let target = Target::at(moto.endpoint(), "pre", "obj", "us-east-1");
    let app = Arc::new(AppServer {
        keys: keys.clone(),
        target: target.clone(),
        asked: Mutex::new(Vec::new()),
    });
    let engine = engine();
    let mut job = S3Upload::new(target, Auth::Presigned(app.clone()), &path);
    job.part_size = Some(5 << 20);
    job.parallel = 3;
    let (response, summary) = upload(&engine, &job, &AtomicBool::new(false), |_, _| {}).unwrap();
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(summary.parts, 3);
    assert_eq!(moto.sha256_of("pre", "obj", None), digest);
    assert_eq!(*app.asked.lock().unwrap(), ["POST", "PUT", "PUT", "PUT", "POST"]);
    assert_eq!(moto.uploads_left("pre", None), 0);
    engine.shutdown();
}

#[test]
fn a_program_killed_mid_upload_resumes_with_only_the_missing_parts() {
    let moto = Moto::start(None);
    assert_eq!(moto.request("PUT", "/res", &[], None).0, 200);
    let dir = temp_dir("resume");
    let config = dir.0.join("config");
    let (path, digest) = file(&dir.0, "big.bin", 60 * MIB);
    let endpoint = moto.endpoint().to_string();
    let run = |extra: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(["upload", "s3://res/big.bin"])
            .arg(&path)
            .args([
                "--endpoint",
                &endpoint,
                "--no-sign-request",
                "--part-size",
                "5M",
                "--parallel",
                "1",
            ])
            .args(extra)
            .env("XDG_CONFIG_HOME", &config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().unwrap()
    };
    // Killed once three parts are in: their bytes were sent and a fourth
    // is under way.
    let mut first = run(&["--progress", "json"]);
    let stderr = BufReader::new(first.stderr.take().unwrap());
    for line in stderr.lines() {
        let line = line.unwrap();
        let Ok(progress) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if progress["totalBytesSent"].as_u64().unwrap_or(0) > 16 * MIB as u64 {
            break;
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(moto.uploads_left("res", None), 1, "the killed upload is kept");
    let second = run(&["-v"]).wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr),
    );
    assert!(second.status.success(), "{stdout} {stderr}");
    assert!(stdout.starts_with("200 "), "{stdout}");
    let kept: u32 = stderr
        .split("parts, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    let sent: u32 = stderr
        .split("earlier run; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(kept >= 3, "{stderr}");
    assert_eq!(kept + sent, 12, "{stderr}");
    assert_eq!(moto.sha256_of("res", "big.bin", None), digest);
    assert_eq!(moto.uploads_left("res", None), 0);
}

/// The facade (and the C ABI, which reads the same options JSON).
fn client() -> uploadtask::Client {
    uploadtask::Client::new(uploadtask::ClientConfig {
        roots: uploadtask::Roots::new().allow_plain_paths(),
        resume_store: Some(Arc::new(uploadtask::resume::MemoryStore::default())),
        ..uploadtask::ClientConfig::default()
    })
    .unwrap()
}

#[test]
fn the_facade_takes_an_s3_url_and_options_json_and_abort_leaves_nothing() {
    let moto = Moto::start(None);
    assert_eq!(moto.request("PUT", "/fac", &[], None).0, 200);
    let dir = temp_dir("facade");
    let (path, digest) = file(&dir.0, "f.bin", 12 * MIB);
    let client = client();
    let json = serde_json::json!({
        "url": "s3://fac/photos/f.bin",
        "filePath": path.to_str().unwrap(),
        "s3": { "endpoint": moto.endpoint().as_str(), "parallel": 2, "partSize": 5 << 20, "anonymous": true }
    });
    let options: uploadtask::UploadOptions = serde_json::from_value(json.clone()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = client.upload_file(options);
    let log = Arc::clone(&seen);
    task.on_progress_update(move |p| log.lock().unwrap().push(p.total_bytes_sent));
    let response = task.wait().unwrap();
    assert_eq!(response.status_code, 200, "{}", response.data);
    assert!(response.data.contains("<CompleteMultipartUpload"), "{}", response.data);
    assert_eq!(moto.sha256_of("fac", "photos/f.bin", None), digest);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(seen.last().copied(), Some(12 * MIB as u64));
    // abort() once parts are under way: fail code 1000, the store's
    // upload aborted.
    let (big, _) = file(&dir.0, "big.bin", 40 * MIB);
    let mut options: uploadtask::UploadOptions = serde_json::from_value(json).unwrap();
    options.file_path = big.to_str().unwrap().to_string();
    options.url = "s3://fac/big.bin".into();
    let task = client.upload_file(options);
    let (tx, rx) = std::sync::mpsc::channel();
    task.on_progress_update(move |p| {
        if p.total_bytes_sent > 0 {
            let _ = tx.send(());
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap();
    task.abort();
    let error = task.wait().unwrap_err();
    assert_eq!(error.code(), 1000, "{}", error.message);
    assert_eq!(moto.uploads_left("fac", None), 0);
    // Missing credentials are an argument error (202), before any request.
    let options: uploadtask::UploadOptions = serde_json::from_value(serde_json::json!({
        "url": "s3://fac/x", "filePath": path.to_str().unwrap(),
        "s3": { "endpoint": moto.endpoint().as_str(), "accessKeyId": "only-the-id" }
    }))
    .unwrap();
    assert_eq!(client.upload_file(options).wait().unwrap_err().code(), 202);
}

/// The app's server over HTTP: `GET /sign?method=M&…` answered with the
/// presigned URL (as Uppy's companion signs parts); it counts questions.
struct SigningServer {
    addr: std::net::SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl SigningServer {
    fn start(app: Arc<AppServer>, questions: usize) -> SigningServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&asked);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().take(questions) {
                let mut stream = stream.unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut header = String::new();
                let mut token = String::new();
                while reader.read_line(&mut header).unwrap_or(0) > 2 {
                    if let Some(value) = header.to_ascii_lowercase().strip_prefix("x-app-token:") {
                        token = value.trim().to_string();
                    }
                    header.clear();
                }
                let target = line.split_whitespace().nth(1).unwrap();
                let url = url::Url::parse(&format!("http://x{target}")).unwrap();
                let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                let method = pairs.iter().find(|(k, _)| k == "method").unwrap().1.clone();
                let query: Vec<(&str, &str)> = pairs
                    .iter()
                    .filter(|(k, _)| k != "method")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                log.lock().unwrap().push(format!("{method} {token}"));
                let signed = app.presign(&method, &query).unwrap();
                let body = format!("{{\"url\": \"{signed}\"}}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        SigningServer {
            addr,
            asked,
            _thread: thread,
        }
    }
}

#[test]
fn the_program_and_the_facade_ask_an_app_server_for_each_presigned_url() {
    let moto = Moto::start(None);
    assert_eq!(moto.request("PUT", "/ask", &[], None).0, 200);
    let dir = temp_dir("ask");
    let (path, digest) = file(&dir.0, "f.bin", 11 * MIB);
    let app = |key: &str| {
        Arc::new(AppServer {
            keys: Credentials::new("AKIDEXAMPLE", "app-server-secret"),
            target: Target::at(moto.endpoint(), "ask", key, "us-east-1"),
            asked: Mutex::new(Vec::new()),
        })
    };
    // The program: create, 3 parts, complete.
    let signer = SigningServer::start(app("cli"), 5);
    let out = Command::new(BIN)
        .args(["upload", "s3://ask/cli"])
        .arg(&path)
        .args(["--presign-url", &format!("http://{}/sign", signer.addr)])
        .args(["--part-size", "5M", "--parallel", "2"])
        .env("XDG_CONFIG_HOME", dir.0.join("config"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("200 "));
    assert_eq!(moto.sha256_of("ask", "cli", None), digest);
    let mut asked = signer.asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(asked, ["POST ", "POST ", "PUT ", "PUT ", "PUT "]);
    // The facade (and the C ABI): the request's headers go with each question.
    let signer = SigningServer::start(app("facade"), 5);
    let options: uploadtask::UploadOptions = serde_json::from_value(serde_json::json!({
        "url": "s3://ask/facade",
        "filePath": path.to_str().unwrap(),
        "header": {"X-App-Token": "t1"},
        "s3": { "presignUrl": format!("http://{}/sign", signer.addr), "partSize": 5 << 20 }
    }))
    .unwrap();
    let response = client().upload_file(options).wait().unwrap();
    assert_eq!(response.status_code, 200, "{}", response.data);
    assert_eq!(moto.sha256_of("ask", "facade", None), digest);
    assert!(signer.asked.lock().unwrap().iter().all(|q| q.ends_with(" t1")));
    assert_eq!(moto.uploads_left("ask", None), 0);
}
