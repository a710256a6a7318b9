//! Fuzz findings kept as regression tests, and the fuzz target bodies on
//! every fixture.
//!
//! Each input the fuzzer found (a crash, an OOM, a time-out or a broken
//! property) is checked in under `tests/fuzz-regressions/<target>/` and
//! listed in [`FINDINGS`] with what was wrong. The bodies are the library
//! functions the targets of `fuzz/` call (`fuzzing` modules of the crates),
//! so these tests run exactly what the fuzzer ran.
//!
//! Index of the cases:
//! - `findings_replay_clean`: every listed input now passes its target's body.
//! - `loads_findings_end_within_default_limits`: the copy bombs end, within
//!   the default limits or with their `max_elements` error (the target runs
//!   with smaller limits).
//! - `every_checked_in_input_is_listed`: no input on disk lacks its comment,
//!   no listed input is missing.
//! - `bodies_accept_the_fixtures`: every body passes on every Python-made
//!   fixture, whole and entry by entry (what the seed corpora start from).

use std::path::{Path, PathBuf};

/// A fuzz target body: `Err` when a property fails.
type Body = fn(&[u8]) -> Result<(), String>;

/// The body each target runs, by target name.
const TARGETS: &[(&str, Body)] = &[
    ("ops", mmappickle_codec::fuzzing::ops),
    ("loads", mmappickle_codec::fuzzing::loads),
    ("roundtrip", mmappickle_codec::fuzzing::roundtrip),
    ("scan", mmappickle_container::fuzzing::scan),
    ("array", mmappickle_array::fuzzing::array),
    ("open", mmappickle::fuzzing::open),
    (
        "entry_value_from_pickle",
        mmappickle_codec::fuzzing::entry_value_from_pickle,
    ),
    ("remote_scan", mmappickle_remote::fuzzing::remote_scan),
    ("repair", mmappickle_container::fuzzing::repair),
];

/// A checked-in input: its target, its file name, and what was wrong.
struct Finding {
    target: &'static str,
    file: &'static str,
    what_was_wrong: &'static str,
}

/// Every input the fuzzer found, with the fix.
const FINDINGS: &[Finding] = &[
    Finding {
        target: "loads",
        file: "tuple-dup-bomb",
        what_was_wrong: "85 bytes, `None TUPLE1 (DUP TUPLE2) x 40`: every DUP copies the tuple, \
            doubling the tree; the default max_elements (2^28 values, 8 GiB and more) let it \
            pass libFuzzer's 2 GiB. Fixed: default max_elements 2^23 (codec unpickler.rs).",
    },
    Finding {
        target: "loads",
        file: "timeout-tuple3-dup",
        what_was_wrong: "Found by the fuzzer: DUPs gathered by TUPLE3 and long TUPLE1 chains \
            grow the tree threefold per step; below the old 2^28-value limit it ran for more \
            than 10 s. Fixed with the tuple-dup-bomb fix (each copy is charged, 2^23 values).",
    },
    Finding {
        target: "roundtrip",
        file: "oom-nested-size-estimate",
        what_was_wrong: "Found by the ASan smoke: `dumps` reserved its output from a size \
            estimate that multiplies the first item's size by the item count at every level, \
            so nested lists led by a long payload asked for a 2.7 GB buffer (malloc past the \
            2 GiB cap). Fixed: the reservation is capped at 1 MiB (codec pickler.rs).",
    },
    Finding {
        target: "loads",
        file: "bytes-dup-bomb",
        what_was_wrong: "A 4000-byte BINBYTES doubled by DUP TUPLE2: copies of a payload counted \
            one element each, so max_elements did not bound memory. Fixed: a copied str, bytes \
            or int counts one more element per 32 bytes (codec unpickler.rs, node_count).",
    },
    Finding {
        target: "entry_value_from_pickle",
        file: "two-values-at-stop",
        what_was_wrong: "45 bytes, `(10,)` then `set([1, 2, 3, 300])` on the stack at STOP: \
            pickle.loads takes the top value, the rewrite kept both, so insert_pickle would \
            have stored an entry of two values (the whole file's pickle broken). Fixed: the \
            rewrite counts the stack and refuses a stream that does not leave exactly one \
            value (codec restream.rs, StackCount).",
    },
    Finding {
        target: "entry_value_from_pickle",
        file: "text-not-utf8-even-with-surrogates",
        what_was_wrong: "27 bytes with a SHORT_BINUNICODE of the lone byte 0x94: once the \
            rewrite took text holding surrogates (pickle's surrogatepass) as text, it took \
            any bytes as text, so insert_pickle would have stored a value pickle.loads \
            refuses. Fixed: only UTF-8 with surrogates passes (codec restream.rs, \
            is_utf8_with_surrogates); the fuzz body reads the rewrite the same way.",
    },
    Finding {
        target: "entry_value_from_pickle",
        file: "memo-limit-offset-past-input",
        what_was_wrong: "34 bytes whose rewrite at memo start 2^31-2 runs past the i32::MAX \
            memo limit: the error gave the offset in the rewritten bytes (39), past the \
            34-byte stream. Fixed: it gives the offset of the store or GET in the stream \
            (codec restream.rs).",
    },
    Finding {
        target: "remote_scan",
        file: "range-past-the-budget",
        what_was_wrong: "A trailer a library constructor overwrote makes the scan read the \
            entry's whole value (7754 bytes over 3 blocks of 4096, budget 2 blocks): loading \
            the third block dropped the first before the join, so the cache never held the \
            range and the remote open fetched it forever. Fixed: the range is joined from the \
            fetched blocks before they are kept (remote cache.rs, insert_and_join).",
    },
    Finding {
        target: "repair",
        file: "cut-inside-the-memo-max",
        what_was_wrong:
            "Found by the fuzzer: a file cut 2 bytes into its last trailer's memo_max, \
            those bytes not the memo_max the value alone gives. A read-only open read the key; \
            the repair's completion compared the trailer with the computed memo_max only, did \
            not complete it, and fsck dropped the key. Fixed: the completion keeps the memo_max \
            bytes the cut left (container complete.rs).",
    },
];

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions")
}

fn body_of(target: &str) -> Body {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .unwrap_or_else(|| panic!("unknown fuzz target {target:?}"))
}

#[test]
fn findings_replay_clean() {
    for finding in FINDINGS {
        let path = regressions_dir().join(finding.target).join(finding.file);
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let verdict = body_of(finding.target)(&input);
        assert_eq!(
            verdict,
            Ok(()),
            "{}/{} ({}) fails again",
            finding.target,
            finding.file,
            finding.what_was_wrong
        );
    }
}

// The `loads` target runs with smaller limits than readers use: its
// findings must also end under the default limits, either with a value
// built within them or with the max_elements error (the copy bombs), not
// after gigabytes or minutes.
#[test]
fn loads_findings_end_within_default_limits() {
    for finding in FINDINGS.iter().filter(|finding| finding.target == "loads") {
        let path = regressions_dir().join(finding.target).join(finding.file);
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let limits = mmappickle_codec::Limits::default();
        if let Err(error) = mmappickle_codec::loads_with(&input, &limits) {
            assert!(
                matches!(
                    error.kind(),
                    mmappickle_codec::ErrorKind::LimitExceeded {
                        limit: "max_elements",
                        ..
                    }
                ),
                "{}: {error}",
                finding.file
            );
        }
    }
}

#[test]
fn every_checked_in_input_is_listed() {
    let mut on_disk = Vec::new();
    if let Ok(targets) = std::fs::read_dir(regressions_dir()) {
        for target in targets {
            let target = target.expect("listing tests/fuzz-regressions");
            let target_name = target.file_name().to_string_lossy().into_owned();
            if !target.path().is_dir() {
                continue;
            }
            assert!(
                TARGETS.iter().any(|(name, _)| *name == target_name),
                "tests/fuzz-regressions/{target_name}/ is not a fuzz target"
            );
            for input in std::fs::read_dir(target.path()).expect("listing a target's inputs") {
                let file = input.expect("listing an input").file_name();
                on_disk.push(format!("{target_name}/{}", file.to_string_lossy()));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = FINDINGS
        .iter()
        .map(|finding| format!("{}/{}", finding.target, finding.file))
        .collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "tests/fuzz-regressions/ and FINDINGS disagree"
    );
    for finding in FINDINGS {
        assert!(
            !finding.what_was_wrong.trim().is_empty(),
            "{}/{} has no comment",
            finding.target,
            finding.file
        );
    }
}

/// The value bytes of each entry of a fixture (FORMAT.md: walk the frames).
fn entry_values(file: &[u8]) -> Vec<&[u8]> {
    let table = mmappickle_container::scan(file).expect("fixtures are valid files");
    table
        .entries()
        .iter()
        .map(|entry| {
            let range = entry.value_range();
            let start = usize::try_from(range.start).expect("in memory");
            let end = usize::try_from(range.end).expect("in memory");
            &file[start..end]
        })
        .collect()
}

#[test]
fn bodies_accept_the_fixtures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut n_files = 0;
    for dir_entry in std::fs::read_dir(&fixtures).expect("tests/fixtures/") {
        let path = dir_entry.expect("listing fixtures").path();
        if path.extension().is_none_or(|ext| ext != "mmdpickle") {
            continue;
        }
        n_files += 1;
        let file = std::fs::read(&path).expect("reading a fixture");
        for (target, body) in TARGETS {
            assert_eq!(body(&file), Ok(()), "{target} on {}", path.display());
        }
        for (entry_idx, value) in entry_values(&file).into_iter().enumerate() {
            for (target, body) in TARGETS {
                assert_eq!(
                    body(value),
                    Ok(()),
                    "{target} on entry {entry_idx} of {}",
                    path.display()
                );
            }
        }
    }
    assert!(n_files > 0, "no fixtures found in {}", fixtures.display());
}
