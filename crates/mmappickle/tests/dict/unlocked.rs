//! Reads without the lock: `get` of a small generic value this handle has seen returns while
//! another process holds the exclusive lock, sees other handles' replaces, removes and
//! vacuums at once, and leaves arrays, large values and dicts with picklers of their own to
//! the locked path.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use mmappickle::{Located, Pickler, StoredValue, Transaction, UNLOCKED_READ_MAX};

use super::*;

/// Whether `m` copies the value of `key` without the lock.
fn copied_unlocked(m: &MmapDict, key: &str) -> bool {
    m.with_unlocked_value(key, |value| {
        let mut bytes = vec![0; value.generic_len().unwrap_or(0)];
        value.copy_generic(&mut bytes)
    })
    .unwrap_or(false)
}

/// Where `m` locates the array of `key` without the lock, if it does.
fn located_unlocked(m: &MmapDict, key: &str) -> Option<String> {
    m.with_unlocked_value(key, |value| {
        value.locate_array().map(|place| format!("{place:?}"))
    })
    .flatten()
}

#[test]
fn get_of_a_seen_value_returns_while_another_process_holds_the_lock() {
    let (_dir, path) = temp_file("held.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("a", "seen").unwrap();
    m.insert("b", "not seen since").unwrap();
    assert_eq!(m.get("a").unwrap(), Value::from("seen"));
    // Another open file description holds the exclusive lock, as another process would.
    let other = std::fs::File::open(&path).unwrap();
    fs2::FileExt::lock_exclusive(&other).unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| sender.send(m.get("a").map_err(|e| e.to_string())).unwrap());
        // A read under the lock would wait here until the lock is released below.
        let read = receiver.recv_timeout(Duration::from_secs(60));
        fs2::FileExt::unlock(&other).unwrap();
        let item = read.expect("read without waiting").unwrap();
        assert_eq!(item, Value::from("seen"));
    });
}

#[test]
fn arrays_are_located_without_the_lock_as_under_it() {
    let (_dir, path) = temp_file("arrays.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("array", &[1.5f32, 2.5, 3.5, 4.5], &[2, 2])
        .unwrap();
    m.insert_masked("masked", &[1.0f64, 2.0, 3.0], &[false, true, false], &[3])
        .unwrap();
    m.insert("value", 7).unwrap();
    m.keys().unwrap();
    let other = std::fs::File::open(&path).unwrap();
    fs2::FileExt::lock_exclusive(&other).unwrap();
    let unlocked: Vec<String> = ["array", "masked"]
        .iter()
        .map(|key| {
            assert!(!copied_unlocked(&m, key));
            located_unlocked(&m, key).expect("an array, located")
        })
        .collect();
    assert_eq!(located_unlocked(&m, "value"), None);
    fs2::FileExt::unlock(&other).unwrap();
    let locked: Vec<String> = ["array", "masked"]
        .iter()
        .map(|key| format!("{:?}", m.locate(key).unwrap()))
        .collect();
    assert_eq!(unlocked, locked);
    // Another handle replaces the array: its place is no longer given without the lock.
    let replaced = m.with_unlocked_value("array", |seen| {
        let mut other = MmapDict::open(&path).unwrap();
        other.insert_array("array", &[9u8], &[1]).unwrap();
        seen.locate_array().is_none()
    });
    assert_eq!(replaced, Some(true));
    assert_eq!(located_unlocked(&m, "array"), None);
}

#[test]
fn other_handles_changes_are_seen_at_the_next_get() {
    let (_dir, path) = temp_file("others.mmdpickle");
    let m = {
        let mut m = MmapDict::open(&path).unwrap();
        m.insert("a", 1).unwrap();
        m.insert("b", 2).unwrap();
        m.insert("gone", 3).unwrap();
        m
    };
    assert_eq!(m.get("a").unwrap(), Value::from(1));
    assert!(copied_unlocked(&m, "b"));
    let mut other = MmapDict::open(&path).unwrap();
    other.insert("a", 10).unwrap();
    assert!(
        !copied_unlocked(&m, "a"),
        "a replace moves the commit number on"
    );
    assert!(!copied_unlocked(&m, "b"));
    assert_eq!(m.get("a").unwrap(), Value::from(10));
    assert!(
        copied_unlocked(&m, "a"),
        "the new state is read without the lock again"
    );
    other.remove("gone").unwrap();
    assert!(matches!(
        m.get("gone").unwrap_err().kind(),
        ErrorKind::KeyNotFound { .. }
    ));
    // A vacuum by another handle: the old file is marked, the new one read under the lock.
    other.vacuum().unwrap();
    assert!(!copied_unlocked(&m, "b"));
    other.insert("c", 4).unwrap();
    assert_eq!(m.get("c").unwrap(), Value::from(4));
    assert_eq!(m.get("b").unwrap(), Value::from(2));
    assert!(copied_unlocked(&m, "b"));
}

#[test]
fn arrays_large_values_and_picklers_of_ones_own_take_the_lock() {
    let (_dir, path) = temp_file("locked.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("array", &[1.0f64, 2.0], &[2]).unwrap();
    let large = "x".repeat(UNLOCKED_READ_MAX as usize);
    m.insert("large", large.as_str()).unwrap();
    m.insert("small", "y").unwrap();
    m.keys().unwrap();
    assert!(!copied_unlocked(&m, "array"));
    assert!(!copied_unlocked(&m, "large"));
    assert_eq!(
        m.with_unlocked_value("large", |value| value.generic_len()),
        Some(None)
    );
    assert_eq!(located_unlocked(&m, "large"), None);
    assert!(matches!(m.get("array").unwrap(), Item::Array(_)));
    assert_eq!(m.get("large").unwrap(), Value::from(large.as_str()));
    drop(m);
    // A pickler of one's own, before the generic one: `get` must ask it.
    let m = MmapDict::options()
        .picklers(
            MmapDict::builtin_picklers()
                .into_iter()
                .chain([Arc::new(EveryValueCounted) as Arc<dyn Pickler>]),
        )
        .open(&path)
        .unwrap();
    m.keys().unwrap();
    assert!(m.with_unlocked_value("small", |_| ()).is_none());
    let item = m.get("small").unwrap();
    let counted = item
        .as_other()
        .and_then(|other| other.downcast_ref::<usize>());
    // SHORT_BINUNICODE, its length, "y".
    assert_eq!(
        counted,
        Some(&3),
        "the value's length, as the pickler read it"
    );
}

/// Reads every generic value as its length in bytes.
#[derive(Debug)]
struct EveryValueCounted;

impl Pickler for EveryValueCounted {
    fn name(&self) -> &str {
        "EveryValueCounted"
    }

    fn priority(&self) -> i32 {
        0
    }

    fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, mmappickle::Error> {
        Ok(matches!(value.located(), Located::Value(_)))
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, mmappickle::Error> {
        Ok(Item::other(self.name(), value.bytes().len()))
    }

    fn is_picklable(&self, _: &dyn std::any::Any) -> bool {
        false
    }

    fn write(
        &self,
        _: &str,
        _: &dyn std::any::Any,
        _: &mut Transaction<'_>,
    ) -> Result<(), mmappickle::Error> {
        unreachable!("is_picklable is false")
    }
}

/// `value_for("k", n)`: a value whose every byte depends on `n`, so that a torn read (half
/// one value, half another) or a read of moved bytes cannot pass `check_value`.
fn value_for(key: &str, n: usize) -> String {
    let filler = char::from(b'a' + (n % 26) as u8);
    format!("{key}:{n}:{}", filler.to_string().repeat(n % 97))
}

fn check_value(key: &str, value: &str) {
    let n: usize = value
        .strip_prefix(&format!("{key}:"))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key}: a value of another key or a torn one: {value:?}"));
    assert_eq!(value, value_for(key, n), "{key}: a torn value");
}

// The reads without the lock race a writer that replaces, removes and re-inserts values and
// vacuums the file (each vacuum a new file), in another thread through another handle: every
// value read is one that was written whole, or the key is missing (removed then); and once
// the writer is done, reads give its last state (none stays on a file a vacuum replaced).
#[test]
fn reads_racing_replaces_removes_and_vacuums_see_only_whole_values() {
    let (_dir, path) = temp_file("race.mmdpickle");
    let keys: Vec<String> = (0..8).map(|i| format!("k{i}")).collect();
    let mut writer = MmapDict::open(&path).unwrap();
    for key in &keys {
        writer.insert(key, value_for(key, 0).as_str()).unwrap();
    }
    let reader = MmapDict::open_readonly(&path).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut read, mut unlocked) = (0usize, 0usize);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 1..=600 {
                let key = &keys[n % keys.len()];
                match n % 10 {
                    3 => drop(writer.remove(key).unwrap()),
                    9 => drop(writer.vacuum().unwrap()),
                    _ => writer.insert(key, value_for(key, n).as_str()).unwrap(),
                }
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        while !done.load(std::sync::atomic::Ordering::Relaxed) || read < 1000 {
            let key = &keys[read % keys.len()];
            unlocked += usize::from(copied_unlocked(&reader, key));
            match reader.get(key) {
                Ok(item) => match item.as_value() {
                    Some(Value::Str(value)) => check_value(key, value),
                    other => panic!("{key}: {other:?}"),
                },
                Err(error) if matches!(error.kind(), ErrorKind::KeyNotFound { .. }) => {}
                Err(error) => panic!("{key}: {error}"),
            }
            read += 1;
        }
    });
    assert!(
        unlocked > 0,
        "no read went without the lock in {read} reads"
    );
    let last = |key: &str| value_for(key, 1000 + key.len());
    for key in &keys {
        writer.insert(key, last(key).as_str()).unwrap();
    }
    for key in &keys {
        check_value(
            key,
            reader
                .get(key)
                .unwrap()
                .as_value()
                .unwrap()
                .as_str()
                .unwrap(),
        );
    }
    writer.vacuum().unwrap();
    writer.insert(&keys[0], "after the vacuum").unwrap();
    assert_eq!(
        reader.get(&keys[0]).unwrap(),
        Value::from("after the vacuum")
    );
    for key in &keys[1..] {
        assert_eq!(reader.get(key).unwrap(), Value::from(last(key).as_str()));
    }
}
