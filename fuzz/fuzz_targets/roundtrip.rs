//! `roundtrip`: an arbitrary value is written and read back unchanged; see
//! `mmappickle_codec::fuzzing::roundtrip_value` (`roundtrip` replays the raw bytes).
#![no_main]

use mmappickle_codec::fuzzing::{roundtrip_value, FuzzValue};

libfuzzer_sys::fuzz_target!(|input: FuzzValue| {
    if let Err(finding) = roundtrip_value(&input) {
        panic!("{finding}");
    }
});
