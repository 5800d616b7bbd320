#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| uploadtask_fuzz::s3_session(data));
