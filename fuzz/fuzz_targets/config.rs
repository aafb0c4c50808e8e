#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pushback::fuzzing::config(data));
