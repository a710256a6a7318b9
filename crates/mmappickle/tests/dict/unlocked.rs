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
    m.unlocked_value(key).is_some_and(|value| {
        let mut bytes = vec![0; value.len()];
        value.copy_generic(&mut bytes)
    })
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
    assert!(m.unlocked_value("large").is_none());
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
    assert!(m.unlocked_value("small").is_none());
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
