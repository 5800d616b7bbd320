#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| uploadtask_fuzz::h2_client(data));
