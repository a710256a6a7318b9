//! `remote_scan`: see `mmappickle_remote::fuzzing::remote_scan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_remote::fuzzing::remote_scan(data) {
        panic!("{finding}");
    }
});
