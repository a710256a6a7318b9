//! Scratch files of crashed writers: `<prefix><pid>` beside a container (vacuum's
//! `.NAME.vacuum-PID`, the facade's convert `NAME.converting-PID`).
//!
//! A writer killed inside vacuum or convert leaves its scratch file behind; nothing reads
//! it. Vacuum and fsck remove vacuum's whose process is gone, the next convert of the path
//! convert's (not every read-write open: listing the directory costs as much as the
//! directory is large). Whether a process lives is asked of `/proc/PID` (Linux, and other
//! systems that mount a procfs there). Where there is no `/proc/self`, nothing is removed:
//! a file of a live writer must never go. A process in another PID namespace that shares
//! the directory looks dead from here; vacuum is safe all the same (it builds and renames
//! its scratch file under the container's lock, which the remover holds), and a convert
//! that lost its scratch file fails without touching the original.
//!
//! Both rename their scratch file over the original; with `fsync` durability the directory
//! is synced after ([`sync_parent_directory`]).

use std::fs::File;
use std::io;
use std::path::Path;

/// Removes the files of the directory of `prefix` whose name is the file name of `prefix`
/// followed by the decimal id of a process that is not running. Returns how many went.
///
/// Errors (an unreadable directory, a file already gone) are not reported: a stray scratch
/// file costs disk space, never correctness.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let live = dir.path().join(format!(".d.vacuum-{}", std::process::id()));
/// std::fs::write(&live, b"")?;
/// let removed = mmappickle_container::remove_stale_scratch_files(&dir.path().join(".d.vacuum-"));
/// assert_eq!(removed, 0); // this process lives
/// assert!(live.exists());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn remove_stale_scratch_files(prefix: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Some(name_prefix) = prefix.file_name().and_then(|name| name.to_str()) else {
        return 0;
    };
    let Ok(listing) = std::fs::read_dir(parent_directory(prefix)) else {
        return 0;
    };
    let mut removed = 0;
    for dir_entry in listing.flatten() {
        let file_name = dir_entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|name| name.strip_prefix(name_prefix))
            .and_then(parse_pid)
        else {
            continue;
        };
        if !process_lives(pid) && std::fs::remove_file(dir_entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// `fsync`s the directory holding `path`, so that a rename into it survives a crash.
pub fn sync_parent_directory(path: &Path) -> io::Result<()> {
    File::open(parent_directory(path)).and_then(|directory| directory.sync_all())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_directory(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A process id written by `std::process::id()`: decimal digits only.
fn parse_pid(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether process `pid` exists (a zombie counts: its file stays until the next open).
fn process_lives(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only plain decimal ids are process ids; a name with anything else is not a scratch file.
    #[test]
    fn parses_only_decimal_pids() {
        assert_eq!(parse_pid("123"), Some(123));
        for text in ["", "12a", "+1", "-1", "1 ", "99999999999"] {
            assert_eq!(parse_pid(text), None, "{text}");
        }
    }

    // This process lives; a process that was waited for does not.
    #[test]
    fn tells_live_from_dead_processes() {
        assert!(process_lives(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_lives(pid));
    }
}
