#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kuryr_fuzz::docker_call(data));
