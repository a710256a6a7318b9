//! `loads`: see `mmappickle_codec::fuzzing::loads`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_codec::fuzzing::loads(data) {
        panic!("{finding}");
    }
});
