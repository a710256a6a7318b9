//! The flock: other handles excluded, re-entrance, locks of one thread.

use mmappickle_container::{Container, ErrorKind, NewEntry};

use super::{bytes_value, insert, temp_path};

// While one handle holds the lock, a second file description cannot take it; the lock is
// re-entrant inside with_lock.
#[test]
fn lock_excludes_other_handles_and_is_reentrant() {
    use fs2::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "l.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let probe = std::fs::File::open(&path).unwrap();
    container
        .with_lock(|container| {
            assert!(FileExt::try_lock_exclusive(&probe).is_err());
            insert(container, "inner", &bytes_value(b"1"));
            // Still locked after the nested operation released its level.
            assert!(FileExt::try_lock_exclusive(&probe).is_err());
        })
        .unwrap();
    FileExt::try_lock_exclusive(&probe).unwrap();
    FileExt::unlock(&probe).unwrap();
}

// Two handles of one file in one thread: `flock` would make the thread wait for itself, so
// the lock that would wait is refused with a clear error; another thread's lock is waited
// for. Read-only handles take the shared lock, and read beside a read view.
#[test]
fn a_lock_held_by_this_thread_is_an_error_not_a_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "locks.mmdpickle");
    let mut first = Container::open(&path).unwrap();
    insert(&mut first, "a", &bytes_value(b"a"));
    let mut second = Container::open(&path).unwrap();
    let mut readonly = Container::open_readonly(&path).unwrap();

    let view = first.begin_read().unwrap();
    let new = NewEntry {
        key: "b",
        value_len: 2,
        memo_max: 1,
        align: None,
    };
    let error = second
        .append(new, |sink| sink.write_all(b"K\x01"))
        .unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::LockedByThisThread),
        "{error}"
    );
    assert!(error.to_string().contains("this thread"), "{error}");
    // Shared beside shared: a read-only handle reads.
    assert_eq!(readonly.keys().unwrap(), ["a"]);
    first.end_read(view);
    second.append(new, |sink| sink.write_all(b"K\x01")).unwrap();

    // Inside a change on one handle, a read on another would wait too.
    first
        .with_lock(|first| {
            let error = readonly.keys().unwrap_err();
            assert!(matches!(error.kind(), ErrorKind::LockedByThisThread));
            first.keys().unwrap()
        })
        .unwrap();

    // Another thread's read view is waited for, not refused.
    let (held, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let reader_path = path.clone();
    let reader = std::thread::spawn(move || {
        let mut reader = Container::open_readonly(&reader_path).unwrap();
        let view = reader.begin_read().unwrap();
        held.0.send(()).unwrap();
        release.1.recv().unwrap();
        reader.end_read(view);
    });
    held.1.recv().unwrap();
    let writer = std::thread::spawn(move || {
        let new = NewEntry {
            key: "c",
            value_len: 2,
            memo_max: 1,
            align: None,
        };
        second.append(new, |sink| sink.write_all(b"K\x02")).unwrap();
        second
    });
    release.0.send(()).unwrap();
    reader.join().unwrap();
    let mut second = writer.join().unwrap();
    assert_eq!(second.keys().unwrap(), ["a", "b", "c"]);
}

// A view begun inside an operation reads under that operation's exclusive lock, and keeps it
// after the operation returns (the handle's own operations go on under it); handing the view
// back releases it.
#[test]
fn lock_of_an_operation_is_kept_by_a_view_begun_under_it() {
    use fs2::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "view-under-lock.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let value = bytes_value(b"kept");
    insert(&mut container, "a", &value);
    let view = container
        .with_lock(|container| container.begin_read())
        .unwrap()
        .unwrap();
    let probe = std::fs::File::open(&path).unwrap();
    assert!(FileExt::try_lock_shared(&probe).is_err());
    insert(&mut container, "b", &bytes_value(b"new"));
    assert!(FileExt::try_lock_shared(&probe).is_err());
    let entry = view.table().get("a").cloned().unwrap();
    assert_eq!(view.value(&entry).unwrap(), &value[..]);
    assert_eq!(view.table().get("b"), None);
    container.end_read(view);
    FileExt::try_lock_shared(&probe).unwrap();
    FileExt::unlock(&probe).unwrap();
    assert_eq!(container.keys().unwrap(), ["a", "b"]);
}

// `hold_lock` keeps the lock across calls until `release_held_lock` (the unscoped
// `with_lock`): operations in between reuse it, and another handle of this thread is refused.
#[test]
fn a_held_lock_lasts_until_released() {
    use fs2::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "held.mmdpickle");
    let mut container = Container::open(&path).unwrap();
    let mut second = Container::open(&path).unwrap();
    let probe = std::fs::File::open(&path).unwrap();
    container.hold_lock().unwrap();
    assert!(FileExt::try_lock_shared(&probe).is_err());
    insert(&mut container, "a", &bytes_value(b"a"));
    assert_eq!(container.keys().unwrap(), ["a"]);
    assert!(FileExt::try_lock_shared(&probe).is_err());
    let error = second.hold_lock().unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::LockedByThisThread));
    container.release_held_lock();
    FileExt::try_lock_exclusive(&probe).unwrap();
    FileExt::unlock(&probe).unwrap();
    second.hold_lock().unwrap();
    assert_eq!(second.keys().unwrap(), ["a"]);
    second.release_held_lock();
}
