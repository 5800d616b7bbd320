//! The example of the documented API page, translated: start an upload,
//! abort it at once, listen to progress, remove listeners.
//!
//! Run: `cargo run -p uploadtask --example seed -- URL FILE`
//! (with `uploadtask serve` as the receiver, say). FILE may be a plain path
//! or `internal://mass/…` with `mass` mapped to the current directory.

use uploadtask::{Client, ClientConfig, Roots, UploadOptions, UploadTask};

fn main() {
    let roots = Roots::new().root("mass", ".").allow_plain_paths();
    let configured = Client::configure_global(ClientConfig {
        roots,
        ..ClientConfig::default()
    });
    assert!(
        configured.is_ok(),
        "the global client is configured before its first use"
    );
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080/upload".into());
    let file = args
        .next()
        .unwrap_or_else(|| "internal://mass/download/test.png".into());

    let ret_upload_task: UploadTask = uploadtask::upload_file(
        UploadOptions::new(&url, &file, "testImg")
            .success(|res| {
                println!(
                    "Upload success.resp = {}",
                    serde_json::to_string(res).unwrap_or_default()
                )
            })
            .fail(|data, code| {
                println!("handling fail, errMsg = {data}");
                println!("handling fail, errCode = {code}");
            }),
    );
    // 中断请求任务 (abort the task)
    ret_upload_task.abort();

    // 监听上传进度事件 (listen to progress)
    ret_upload_task.on_progress_update(|res| {
        println!(
            "listening upload progress update event, progressUpdate data = {}",
            serde_json::to_string(res).unwrap_or_default()
        )
    });
    // 取消监听上传进度事件 (remove every listener)
    ret_upload_task.off_progress_update(None);

    // 取消特定的上传进度事件 (remove one listener, keep another), on a second task.
    let task = uploadtask::upload_file(UploadOptions::new(&url, &file, "testImg"));
    let cb = task.on_progress_update(|res| println!("listener 1 (removed): {}%", res.progress));
    task.on_progress_update(|res| {
        println!(
            "listener 2 (kept): {}% {}/{}",
            res.progress, res.total_bytes_sent, res.total_bytes_expected_to_send
        )
    });
    task.off_progress_update(Some(cb));

    let _ = ret_upload_task.wait();
    match task.wait() {
        Ok(res) => println!("second task: statusCode {}", res.status_code),
        Err(e) => println!("second task failed: {} {}", e.code(), e),
    }
}
