//! The checked-in header `facade/ffi/uploadtask.h` is what cbindgen makes of
//! `src/lib.rs` now; with `UPDATE_HEADER=1` this test rewrites it.

#[test]
fn header_is_current() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut generated);
    let path = format!("{crate_dir}/uploadtask.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "facade/ffi/uploadtask.h is stale: run `UPDATE_HEADER=1 cargo test -p uploadtask-ffi --test header` and commit it"
    );
}
