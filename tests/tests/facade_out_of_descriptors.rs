//! Code 200: out of file descriptors is reported as a clear failure of that
//! upload, not a panic. Alone in its binary: it lowers this process's limit.

use uploadtask::{Client, ClientConfig, ErrorKind, Roots, UploadOptions};
use uploadtask_tests::*;

#[test]
fn out_of_descriptors_fails_with_200() {
    let dir = temp_dir("emfile");
    let (path, _) = make_file(&dir, "a.bin", 10, 1);
    let client = Client::new(ClientConfig {
        roots: Roots::new().allow_plain_paths(),
        ..ClientConfig::default()
    })
    .unwrap();
    // Squeeze the soft limit so the next open fails with EMFILE.
    let limit = nofile_limit();
    set_nofile_limit(open_fds() as u64 + 8);
    // The limit bounds descriptor numbers: fill every free one below it.
    let mut fillers = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        fillers.push(file);
        assert!(fillers.len() < 100_000);
    }
    let task = client.upload_file(UploadOptions::new("http://127.0.0.1:9/", path.to_str().unwrap(), "f"));
    let error = task.wait().unwrap_err();
    drop(fillers);
    set_nofile_limit(limit);
    assert_eq!(
        (error.kind, error.code()),
        (ErrorKind::ResourceExhausted, 200),
        "{error}"
    );
}
