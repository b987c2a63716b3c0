#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crossrank::fuzz::config(data));
