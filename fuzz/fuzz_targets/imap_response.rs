#![no_main]

libfuzzer_sys::fuzz_target!(
    // The adapter turns a panic of the IMAP parser it builds on into an error (imap::guarded), so
    // only a panic that escapes may end the run: libfuzzer-sys's hook would abort on any panic.
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| pushback::fuzzing::imap_response(data)
);
