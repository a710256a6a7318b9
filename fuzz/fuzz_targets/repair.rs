//! `repair`: see `mmappickle_container::fuzzing::repair`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_container::fuzzing::repair(data) {
        panic!("{finding}");
    }
});
