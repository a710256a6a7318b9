//! `entry_value_from_pickle`: see `mmappickle_codec::fuzzing::entry_value_from_pickle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_codec::fuzzing::entry_value_from_pickle(data) {
        panic!("{finding}");
    }
});
