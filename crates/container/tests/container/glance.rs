//! Glances: values copied without the lock from the map of the last lock hold, refused as soon
//! as the file shows a change (commit number, an entry's head, key or trailer), followed
//! through other handles' changes and vacuums.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use mmappickle_container::{Container, COMMIT_NUMBER_OFFSET};

use super::*;

/// A read view begun and ended: the map then covers the file as it is.
fn read_view(container: &mut Container) {
    let view = container.begin_read().unwrap();
    container.end_read(view);
}

/// The value of `key` copied through a glance of `container`, if the glance copies it.
fn glanced(container: &Container, key: &str) -> Option<Vec<u8>> {
    let glance = container.glance()?;
    let entry = glance.table().get(key)?.clone();
    let mut value = vec![0; entry.value_len() as usize];
    glance.copy_value(&entry, &mut value).then_some(value)
}

#[test]
fn glance_copies_a_value_without_the_lock_while_another_handle_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "held.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "a", &bytes_value(b"first"));
    assert_eq!(
        glanced(&container, "a"),
        None,
        "the map does not cover the append yet"
    );
    read_view(&mut container);
    // Another open file description holds the exclusive lock, as another process would.
    let other = std::fs::File::open(&path).unwrap();
    fs2::FileExt::lock_exclusive(&other).unwrap();
    assert_eq!(glanced(&container, "a"), Some(bytes_value(b"first")));
    fs2::FileExt::unlock(&other).unwrap();
}

#[test]
fn glance_refuses_a_copy_once_any_checked_byte_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "checks.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "before", &bytes_value(b"x"));
    let entry = insert(&mut container, "key", &bytes_value(b"the value"));
    read_view(&mut container);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    // The commit number, the frame length, the key's length, a key byte, the memo index,
    // the live flag: each changed alone, behind the container's back (as a vacuum in place
    // moving bytes would), refuses the copy; put back, the copy is made again.
    let checked = [
        COMMIT_NUMBER_OFFSET,
        entry.offset() + 1,
        entry.offset() + 10,
        entry.offset() + 11,
        entry.end() - 7,
        entry.end() - 2,
    ];
    for offset in checked {
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], offset).unwrap();
        assert_eq!(glanced(&container, "key"), None, "byte {offset} changed");
        file.write_all_at(&byte, offset).unwrap();
        assert_eq!(glanced(&container, "key"), Some(bytes_value(b"the value")));
    }
}

#[test]
fn glance_sees_other_handles_changes_and_vacuums() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "others.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    insert(&mut container, "a", &bytes_value(b"one"));
    insert(&mut container, "b", &bytes_value(b"two"));
    read_view(&mut container);
    assert_eq!(glanced(&container, "a"), Some(bytes_value(b"one")));
    let mut other = Container::open(&path).unwrap();
    // A replace by another handle: the old entry is deleted, the commit number moves on.
    assert!(other.remove("a").unwrap());
    insert(&mut other, "a", &bytes_value(b"three"));
    assert_eq!(glanced(&container, "a"), None);
    assert_eq!(glanced(&container, "b"), None, "the commit number moved on");
    // The next lock hold sees the new state, and glances copy from it.
    read_view(&mut container);
    assert_eq!(contents(&mut container)["a"], bytes_value(b"three"));
    assert_eq!(glanced(&container, "a"), Some(bytes_value(b"three")));
    // A vacuum by another handle marks the old file before renaming the new one over it.
    other.vacuum().unwrap();
    assert_eq!(glanced(&container, "b"), None);
    insert(&mut other, "c", &bytes_value(b"four"));
    read_view(&mut container);
    assert_eq!(contents(&mut container).len(), 3);
    assert_eq!(glanced(&container, "c"), Some(bytes_value(b"four")));
}
