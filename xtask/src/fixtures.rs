//! `cargo xtask fixtures [--check]`: the Python-made fixtures of `tests/fixtures/`.
//!
//! `tests/python/make_fixtures.py` writes them, with the real mmappickle 1.0,
//! into a directory: `tests/fixtures/` to regenerate, a scratch directory
//! under `target/` to check that the checked-in files did not drift from the
//! script (byte for byte, same set of files).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::{parse_flags, run, venv, workspace_root, Result};

pub fn main(args: &[String]) -> Result {
    let flags = parse_flags(args, &["--check"])?;
    if flags.contains(&"--check") {
        check()
    } else {
        generate()
    }
}

/// Rewrites `tests/fixtures/` from scratch.
fn generate() -> Result {
    let fixtures = workspace_root().join("tests").join("fixtures");
    if fixtures.exists() {
        std::fs::remove_dir_all(&fixtures)
            .map_err(|e| format!("cannot clear {}: {e}", fixtures.display()))?;
    }
    write_fixtures(&fixtures)?;
    println!("wrote {}", fixtures.display());
    Ok(())
}

/// Fails when regenerating would change `tests/fixtures/`.
pub fn check() -> Result {
    let root = workspace_root();
    let scratch = root.join("target").join("xtask").join("fixtures-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .map_err(|e| format!("cannot clear {}: {e}", scratch.display()))?;
    }
    write_fixtures(&scratch)?;
    let checked_in = root.join("tests").join("fixtures");
    let drifted = differing_files(&checked_in, &scratch)?;
    if drifted.is_empty() {
        println!("tests/fixtures/ is what tests/python/make_fixtures.py writes");
        Ok(())
    } else {
        Err(format!(
            "tests/fixtures/ drifted from tests/python/make_fixtures.py: {}; \
             run `cargo xtask fixtures` and commit the result",
            drifted.join(", ")
        ))
    }
}

fn write_fixtures(out_dir: &Path) -> Result {
    let python = venv::ensure_mmappickle()?;
    let script = workspace_root()
        .join("tests")
        .join("python")
        .join("make_fixtures.py");
    run(Command::new(python)
        .arg(script)
        .arg(out_dir)
        // Deterministic output, and no __pycache__ in the source tree.
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1"))
}

/// Names of the files that are in one directory only, or differ in content.
fn differing_files(left: &Path, right: &Path) -> Result<Vec<String>> {
    let names = |dir: &Path| -> Result<BTreeSet<String>> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        entries
            .map(|entry| {
                entry
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .map_err(|e| format!("cannot list {}: {e}", dir.display()))
            })
            .collect()
    };
    let all: BTreeSet<String> = names(left)?.union(&names(right)?).cloned().collect();
    Ok(all
        .into_iter()
        .filter(|name| {
            let left_bytes = std::fs::read(left.join(name));
            let right_bytes = std::fs::read(right.join(name));
            match (left_bytes, right_bytes) {
                (Ok(a), Ok(b)) => a != b,
                _ => true,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_files_finds_changed_missing_and_extra_files() {
        let dir = std::env::temp_dir().join(format!("xtask-fixtures-test-{}", std::process::id()));
        let (left, right) = (dir.join("left"), dir.join("right"));
        for side in [&left, &right] {
            std::fs::create_dir_all(side).unwrap();
            std::fs::write(side.join("same"), b"same bytes").unwrap();
        }
        std::fs::write(left.join("changed"), b"a").unwrap();
        std::fs::write(right.join("changed"), b"b").unwrap();
        std::fs::write(left.join("only_left"), b"").unwrap();
        std::fs::write(right.join("only_right"), b"").unwrap();
        let drifted = differing_files(&left, &right);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(drifted.unwrap(), ["changed", "only_left", "only_right"]);
    }
}
