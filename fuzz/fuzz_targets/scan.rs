//! `scan`: see `mmappickle_container::fuzzing::scan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_container::fuzzing::scan(data) {
        panic!("{finding}");
    }
});
