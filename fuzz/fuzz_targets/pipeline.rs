#![no_main]

libfuzzer_sys::fuzz_target!(
    // Mail::parse turns a panic of mail-parser into a refusal, so only a panic that escapes may
    // end the run: libfuzzer-sys's hook would abort on any panic.
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| pushback::fuzzing::pipeline(data)
);
