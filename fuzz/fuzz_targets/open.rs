//! `open`: see `mmappickle::fuzzing::open`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle::fuzzing::open(data) {
        panic!("{finding}");
    }
});
