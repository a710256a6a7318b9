//! `ops`: see `mmappickle_codec::fuzzing::ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_codec::fuzzing::ops(data) {
        panic!("{finding}");
    }
});
