//! End-to-end tests of uploadtask against independent peers on 127.0.0.1.
//! The tests live in `tests/`; this library holds what they share.
