//! S3 multipart uploads against moto (an S3 implementation no one here
//! wrote) in server mode on 127.0.0.1: sizes around the part size arrive
//! byte-exact; SigV4 keys that moto checks, a wrong secret refused with a
//! clear 403; parts presigned by an app server that holds the keys; a
//! program killed mid-upload resumes with only the missing parts; no
//! multipart upload is left behind. A small store of our own makes the
//! faults moto cannot: a part cut off mid-body, a completion answered 200
//! with an error, an upload id that expired midway.

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
        // Port 0: the server picks a free port and says which (a port
        // picked here could be taken by a test running beside this one).
        let mut command = Command::new("moto_server");
        command
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(n) = checked_after {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let mut child = command
            .spawn()
            .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = lines
            .by_ref()
            .take(50)
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("Running on http://127.0.0.1:")
                    .nth(1)?
                    .trim()
                    .parse::<u16>()
                    .ok()
            })
            .expect("moto_server said no address");
        // Its log goes on; it is read so the server never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
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
    // The edges of the part size, and three other sizes (two drawn at random once).
    for len in [
        0,
        1,
        5 * MIB - 1,
        5 * MIB,
        5 * MIB + 1,
        12_345_678,
        2_192_210,
        20_855_444,
    ] {
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
    // The facade (and the C ABI) with the keys in the options JSON.
    let options: uploadtask::UploadOptions = serde_json::from_value(serde_json::json!({
        "url": "s3://sec/from-json",
        "filePath": path.to_str().unwrap(),
        "s3": { "endpoint": moto.endpoint().as_str(), "partSize": 5 << 20, "parallel": 3,
                "accessKeyId": keys.access_key_id, "secretAccessKey": keys.secret_access_key }
    }))
    .unwrap();
    let response = client().upload_file(options).wait().unwrap();
    assert_eq!(response.status_code, 200, "{}", response.data);
    assert_eq!(moto.sha256_of("sec", "from-json", Some(&keys)), digest);
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
    // SigV4 keys from the environment, checked by moto.
    let moto = Moto::start(Some(3));
    let keys = moto.keys();
    assert_eq!(moto.request("PUT", "/res", &[], Some(&keys)).0, 200);
    let dir = temp_dir("resume");
    let config = dir.0.join("config");
    let (path, digest) = file(&dir.0, "big.bin", 60 * MIB);
    let endpoint = moto.endpoint().to_string();
    let run = |extra: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(["upload", "s3://res/big.bin"])
            .arg(&path)
            .args(["--endpoint", &endpoint, "--part-size", "5M", "--parallel", "1"])
            .args(extra)
            .env("XDG_CONFIG_HOME", &config)
            .env("AWS_ACCESS_KEY_ID", &keys.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &keys.secret_access_key)
            .env_remove("AWS_SESSION_TOKEN")
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
    assert_eq!(moto.uploads_left("res", Some(&keys)), 1, "the killed upload is kept");
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
    assert_eq!(moto.sha256_of("res", "big.bin", Some(&keys)), digest);
    assert_eq!(moto.uploads_left("res", Some(&keys)), 0);
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

/// Faults a real store cannot be asked to make, for [`FaultStore`].
#[derive(Default)]
struct Faults {
    /// This part's first attempt: half its body read, then the connection dropped.
    reset_part: Option<u32>,
    /// CompleteMultipartUpload answers `200` with an `<Error>` this many times.
    complete_errors: u32,
    /// The first part's first attempt finds the upload gone (`NoSuchUpload`).
    expire_once: bool,
    /// Each part's answer waits (10 s at most) until this many parts are
    /// under way at once, so that the parts in flight can be counted.
    hold_until: usize,
}

#[derive(Default)]
struct StoreState {
    faults: Faults,
    next: u32,
    uploads: std::collections::HashMap<String, std::collections::BTreeMap<u32, (String, Vec<u8>)>>,
    objects: std::collections::HashMap<String, Vec<u8>>,
    /// Faults made, and uploads created, for the checks.
    made: Vec<&'static str>,
    created: u32,
    /// Part requests under way now, and the most at once.
    active: usize,
    most_active: usize,
}

/// A small S3 of our own on 127.0.0.1 (create, parts, complete, abort,
/// get) that makes the faults of [`Faults`]; it assembles objects from the
/// parts the completion names, so byte-exactness is checked end to end.
struct FaultStore {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<StoreState>>,
}

impl FaultStore {
    fn start(faults: Faults) -> FaultStore {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(StoreState {
            faults,
            ..StoreState::default()
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = FaultStore::serve(stream, &state);
                });
            }
        });
        FaultStore { addr, state }
    }

    fn serve(stream: TcpStream, state: &Mutex<StoreState>) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let (mut length, mut expect) = (0usize, false);
            loop {
                let mut header = String::new();
                reader.read_line(&mut header)?;
                let lower = header.trim().to_ascii_lowercase();
                if lower.is_empty() {
                    break;
                }
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                expect |= lower == "expect: 100-continue";
            }
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let method = line.split_whitespace().next().unwrap_or("").to_string();
            let url = url::Url::parse(&format!("http://x{target}")).unwrap();
            let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
            let key = url.path().to_string();
            let part = query.get("partNumber").and_then(|n| n.parse::<u32>().ok());
            let id = query.get("uploadId").cloned();
            // Faults decided before the body is read.
            let mut fault = None;
            {
                let mut s = state.lock().unwrap();
                if method == "PUT" && part.is_some() {
                    if s.faults.expire_once && part == Some(1) {
                        s.faults.expire_once = false;
                        if let Some(id) = &id {
                            s.uploads.remove(id);
                        }
                        s.made.push("expired");
                    } else if s.faults.reset_part.is_some() && s.faults.reset_part == part {
                        s.faults.reset_part = None;
                        s.made.push("reset");
                        fault = Some("reset");
                    }
                }
            }
            if expect {
                writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            if fault == Some("reset") {
                let mut half = vec![0u8; length / 2];
                reader.read_exact(&mut half)?;
                return Ok(()); // dropped mid-body
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            if method == "PUT" && part.is_some() {
                let target = {
                    let mut s = state.lock().unwrap();
                    s.active += 1;
                    s.most_active = s.most_active.max(s.active);
                    s.faults.hold_until
                };
                for _ in 0..1000 {
                    if state.lock().unwrap().most_active >= target {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                state.lock().unwrap().active -= 1;
            }
            let (status, etag, answer) = {
                let mut s = state.lock().unwrap();
                FaultStore::answer(&mut s, &method, &key, &query, part, id, body)
            };
            let etag = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
            let head = format!("HTTP/1.1 {status}\r\n{etag}Content-Length: {}\r\n\r\n", answer.len());
            writer.write_all(head.as_bytes())?;
            writer.write_all(&answer)?;
        }
    }

    fn answer(
        s: &mut StoreState,
        method: &str,
        key: &str,
        query: &std::collections::HashMap<String, String>,
        part: Option<u32>,
        id: Option<String>,
        body: Vec<u8>,
    ) -> (&'static str, Option<String>, Vec<u8>) {
        let no_such = || b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>".to_vec();
        match (method, id, part) {
            ("POST", None, None) if query.contains_key("uploads") => {
                s.next += 1;
                s.created += 1;
                let id = format!("u{}", s.next);
                s.uploads.insert(id.clone(), Default::default());
                let xml =
                    format!("<InitiateMultipartUploadResult><UploadId>{id}</UploadId></InitiateMultipartUploadResult>");
                ("200 OK", None, xml.into_bytes())
            }
            ("PUT", Some(id), Some(n)) => match s.uploads.get_mut(&id) {
                Some(parts) => {
                    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..16]);
                    parts.insert(n, (etag.clone(), body));
                    ("200 OK", Some(etag), Vec::new())
                }
                None => ("404 Not Found", None, no_such()),
            },
            ("POST", Some(id), None) => {
                if s.faults.complete_errors > 0 {
                    s.faults.complete_errors -= 1;
                    s.made.push("complete error");
                    let xml = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>";
                    return ("200 OK", None, xml.to_vec());
                }
                let Some(parts) = s.uploads.remove(&id) else {
                    return ("404 Not Found", None, no_such());
                };
                let text = String::from_utf8_lossy(&body).into_owned();
                let numbers: Vec<u32> = uploadtask_objects::xml::all(&text, "PartNumber")
                    .map(|n| n.parse().unwrap())
                    .collect();
                let etags: Vec<String> = uploadtask_objects::xml::all(&text, "ETag").collect();
                let mut object = Vec::new();
                for (n, etag) in numbers.iter().zip(&etags) {
                    match parts.get(n) {
                        Some((kept, bytes)) if kept == etag => object.extend_from_slice(bytes),
                        _ => {
                            return (
                                "400 Bad Request",
                                None,
                                b"<Error><Code>InvalidPart</Code></Error>".to_vec(),
                            )
                        }
                    }
                }
                s.objects.insert(key.to_string(), object);
                (
                    "200 OK",
                    None,
                    b"<CompleteMultipartUploadResult><ETag>\"x\"</ETag></CompleteMultipartUploadResult>".to_vec(),
                )
            }
            ("DELETE", Some(id), None) => {
                s.uploads.remove(&id);
                ("204 No Content", None, Vec::new())
            }
            _ => ("400 Bad Request", None, Vec::new()),
        }
    }

    fn object_sha256(&self, key: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        s.objects.get(key).map(|o| hex::encode(Sha256::digest(o)))
    }
}

fn through_faults(faults: Faults, size: usize) -> (FaultStore, String, uploadtask_objects::run::Summary) {
    let store = FaultStore::start(faults);
    let dir = temp_dir(&format!("faults-{}", store.addr.port()));
    let (path, digest) = file(&dir.0, "f.bin", size);
    let endpoint = url::Url::parse(&format!("http://{}", store.addr)).unwrap();
    let mut job = S3Upload::new(Target::at(endpoint, "b", "k", "us-east-1"), Auth::Anonymous, &path);
    job.part_size = Some(5 << 20);
    job.parallel = 2;
    let engine = engine();
    let (response, summary) = upload(&engine, &job, &AtomicBool::new(false), |_, _| {}).unwrap();
    engine.shutdown();
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert!(String::from_utf8_lossy(&response.body).contains("CompleteMultipartUploadResult"));
    (store, digest, summary)
}

#[test]
fn a_part_cut_off_mid_body_goes_again_on_its_own() {
    let (store, digest, summary) = through_faults(
        Faults {
            reset_part: Some(2),
            ..Faults::default()
        },
        16 * MIB,
    );
    assert_eq!(store.object_sha256("/b/k"), Some(digest));
    assert_eq!(store.state.lock().unwrap().made, ["reset"]);
    assert_eq!((summary.parts, summary.part_requests), (4, 5));
    assert!(store.state.lock().unwrap().uploads.is_empty());
}

#[test]
fn a_completion_answered_200_with_an_error_is_sent_again_not_taken_for_success() {
    let (store, digest, _) = through_faults(
        Faults {
            complete_errors: 2,
            ..Faults::default()
        },
        7 * MIB,
    );
    assert_eq!(store.state.lock().unwrap().made, ["complete error", "complete error"]);
    assert_eq!(store.object_sha256("/b/k"), Some(digest));
}

#[test]
fn an_upload_id_that_expired_midway_starts_over_with_a_new_one() {
    let (store, digest, summary) = through_faults(
        Faults {
            expire_once: true,
            ..Faults::default()
        },
        11 * MIB,
    );
    let s = store.state.lock().unwrap();
    assert_eq!((s.made.as_slice(), s.created), (&["expired"][..], 2));
    assert!(s.uploads.is_empty(), "the dead upload left nothing");
    drop(s);
    assert!(summary.part_requests >= 4, "{summary:?}");
    assert_eq!(store.object_sha256("/b/k"), Some(digest));
}

#[test]
fn the_program_keeps_its_parts_in_flight_together() {
    // The program once gave the engine one place in flight: its parts went
    // one at a time, whatever --parallel said.
    let store = FaultStore::start(Faults {
        hold_until: 3,
        ..Faults::default()
    });
    let dir = temp_dir("parallel");
    let (path, digest) = file(&dir.0, "f.bin", 16 * MIB);
    let out = Command::new(BIN)
        .args(["upload", "s3://b/k"])
        .arg(&path)
        .args(["--endpoint", &format!("http://{}", store.addr), "--no-sign-request"])
        .args(["--part-size", "5M", "--parallel", "3"])
        .env("XDG_CONFIG_HOME", dir.0.join("config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(store.state.lock().unwrap().most_active, 3);
    assert_eq!(store.object_sha256("/b/k"), Some(digest));
}
