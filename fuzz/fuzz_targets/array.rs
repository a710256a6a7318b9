//! `array`: see `mmappickle_array::fuzzing::array`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(finding) = mmappickle_array::fuzzing::array(data) {
        panic!("{finding}");
    }
});
