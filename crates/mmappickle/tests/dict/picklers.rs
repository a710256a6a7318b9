//! Value kinds through the `Pickler` trait: the built-in kinds dispatched as picklers, a kind
//! of one's own beside them, priorities, a list without built-ins, and picklers that fail.

use std::any::Any;
use std::sync::Arc;

use mmappickle::{
    ArrayPickler, Error, ErrorKind, GenericPickler, Item, Located, MmapDict, OwnedArray, Pickler,
    StoredValue, Transaction, Value,
};

/// A user type stored in a layout of its own: a pickled `bytes` object whose payload starts
/// with a mark, and whose payload the pickler maps instead of copying.
#[derive(Debug, PartialEq)]
struct Frame {
    pixels: Vec<u8>,
}

const FRAME_MARK: &[u8] = b"FRAME1";

/// The pixels of a frame's value: a `bytes` object (`SHORT_BINBYTES` or `BINBYTES`, a memo
/// put after it or not) whose payload starts with the mark.
fn frame_pixels(value: &[u8]) -> Option<&[u8]> {
    let (start, len) = match value {
        [b'C', len, ..] => (2, usize::from(*len)),
        [b'B', a, b, c, d, ..] => (5, u32::from_le_bytes([*a, *b, *c, *d]) as usize),
        _ => return None,
    };
    value.get(start..start + len)?.strip_prefix(FRAME_MARK)
}

#[derive(Debug)]
struct FramePickler {
    priority: i32,
}

impl Pickler for FramePickler {
    fn name(&self) -> &str {
        "FramePickler"
    }

    fn priority(&self) -> i32 {
        self.priority
    }

    fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, Error> {
        Ok(frame_pixels(value.bytes()).is_some())
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
        let pixels = frame_pixels(value.bytes())
            .expect("is_valid said so")
            .to_vec();
        Ok(Item::other(self.name(), Frame { pixels }))
    }

    fn is_picklable(&self, value: &dyn Any) -> bool {
        value.is::<Frame>()
    }

    fn write(&self, key: &str, value: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error> {
        let frame = value.downcast_ref::<Frame>().expect("is_picklable said so");
        let payload = [FRAME_MARK, &frame.pixels].concat();
        tx.insert_written(key, |file, offset, memo_start| {
            let len = u32::try_from(payload.len()).expect("a small frame");
            let value = [&[b'B'][..], &len.to_le_bytes(), &payload].concat();
            std::os::unix::fs::FileExt::write_all_at(file, &value, offset)?;
            Ok((value.len() as u64, memo_start))
        })
    }
}

/// A pickler whose writes are garbage: an opcode stream cut in the middle.
#[derive(Debug)]
struct TornPickler;

impl Pickler for TornPickler {
    fn name(&self) -> &str {
        "TornPickler"
    }

    fn priority(&self) -> i32 {
        10
    }

    fn is_valid(&self, _: &StoredValue<'_>) -> Result<bool, Error> {
        Ok(false)
    }

    fn read(&self, _: &StoredValue<'_>) -> Result<Item, Error> {
        unreachable!("never valid")
    }

    fn is_picklable(&self, value: &dyn Any) -> bool {
        value.is::<u8>()
    }

    fn write(&self, key: &str, _: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error> {
        tx.insert_written(key, |file, offset, memo_start| {
            // BINUNICODE of 10 bytes, 3 given.
            let value = b"X\x0a\x00\x00\x00abc";
            std::os::unix::fs::FileExt::write_all_at(file, value, offset)?;
            Ok((value.len() as u64, memo_start))
        })
    }
}

fn open_with(path: &std::path::Path, extra: Vec<Arc<dyn Pickler>>) -> MmapDict {
    let picklers = MmapDict::builtin_picklers().into_iter().chain(extra);
    MmapDict::options().picklers(picklers).open(path).unwrap()
}

#[test]
fn a_kind_of_ones_own_is_written_and_read_beside_the_built_in_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.mmdpickle");
    let mut m = open_with(&path, vec![Arc::new(FramePickler { priority: 50 })]);
    let frame = Frame {
        pixels: vec![1, 2, 3, 250],
    };
    m.insert_any("frame", &frame).unwrap();
    m.insert_any("label", &Value::from("first")).unwrap();
    let grid = OwnedArray {
        dtype: mmappickle::DType::parse("<i2").unwrap(),
        shape: vec![2],
        data: vec![1, 0, 2, 0],
    };
    m.insert_any("grid", &grid).unwrap();

    let read = m.get("frame").unwrap();
    let other = read.as_other().expect("read by the frame pickler");
    assert_eq!(other.pickler(), "FramePickler");
    assert_eq!(other.downcast_ref::<Frame>(), Some(&frame));
    assert_eq!(m.get("label").unwrap(), Value::from("first"));
    let Item::Array(array) = m.get("grid").unwrap() else {
        panic!("the array pickler reads arrays")
    };
    assert_eq!(array.bytes(), [1, 0, 2, 0]);

    // The quick pass over generic values leaves every value to the picklers when one of
    // one's own may claim a generic-looking value.
    let snapshot = m.read().unwrap();
    let glanced: Vec<_> = snapshot
        .generic_value_bytes()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(glanced, [("frame", None), ("label", None), ("grid", None)]);
    drop(snapshot);

    // Without the frame pickler the same entry is a plain `bytes` value, as Python's
    // `pickle.load` of the file sees it (and the quick pass gives its bytes).
    drop(m);
    let plain = MmapDict::open_readonly(&path).unwrap();
    let expected = [FRAME_MARK, &frame.pixels].concat();
    assert_eq!(plain.get("frame").unwrap(), Value::Bytes(expected));
    let snapshot = plain.read().unwrap();
    let glanced: Vec<_> = snapshot
        .generic_value_bytes()
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(glanced.len(), 3);
    assert_eq!(
        glanced[0].1,
        Some(plain.raw_value("frame").unwrap().as_slice())
    );
    assert_eq!(glanced[2], ("grid", None));
}

#[test]
fn picklers_are_tried_in_decreasing_priority() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("priority.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("frame", Value::Bytes([FRAME_MARK, b"xy"].concat()))
        .unwrap();
    drop(m);
    // Below the generic pickler (-100): never asked, the generic value wins.
    let low = open_with(&path, vec![Arc::new(FramePickler { priority: -200 })]);
    assert!(matches!(low.get("frame").unwrap(), Item::Value(_)));
    let high = open_with(&path, vec![Arc::new(FramePickler { priority: -50 })]);
    assert!(matches!(high.get("frame").unwrap(), Item::Other(_)));
}

#[test]
fn without_the_array_pickler_an_array_is_read_as_a_generic_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generic-only.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("grid", &[1u8, 2, 3], &[3]).unwrap();
    drop(m);
    let generic_only = MmapDict::options()
        .picklers([Arc::new(GenericPickler) as Arc<dyn Pickler>])
        .open(&path)
        .unwrap();
    let Item::Value(value) = generic_only.get("grid").unwrap() else {
        panic!("read by the generic pickler")
    };
    let array = OwnedArray::from_value(&value).unwrap().unwrap();
    assert_eq!(array.data, [1, 2, 3]);
}

#[test]
fn no_pickler_valid_or_picklable_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("name", "value").unwrap();
    let error = m.insert_any("number", &7u64).unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::NoPickler { reading: false, .. }
    ));
    assert_eq!(
        error.to_string(),
        "no pickler of the dict stores the value given for key \"number\""
    );
    drop(m);
    let arrays_only = MmapDict::options()
        .picklers([Arc::new(ArrayPickler) as Arc<dyn Pickler>])
        .open(&path)
        .unwrap();
    let error = arrays_only.get("name").unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::NoPickler { reading: true, .. }
    ));
    let Located::Value(place) = arrays_only.locate("name").unwrap() else {
        panic!("a generic value")
    };
    assert_eq!(error.offset(), Some(place.offset));
}

#[test]
fn a_pickler_that_writes_garbage_leaves_the_file_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.mmdpickle");
    let mut m = open_with(&path, vec![Arc::new(TornPickler)]);
    m.insert("kept", 1).unwrap();
    let before = std::fs::read(&path).unwrap();
    let error = m.insert_any("torn", &3u8).unwrap_err();
    assert!(
        error.to_string().contains("whole pickle opcodes"),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(m.keys().unwrap(), ["kept"]);
}

/// Maps a place it makes up: a pickler may map only inside its own value.
#[derive(Debug)]
struct Overreaching;

impl Pickler for Overreaching {
    fn name(&self) -> &str {
        "Overreaching"
    }

    fn priority(&self) -> i32 {
        1000
    }

    fn is_valid(&self, _: &StoredValue<'_>) -> Result<bool, Error> {
        Ok(true)
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
        let Located::Array(place) = value.located() else {
            unreachable!("only arrays in this file")
        };
        let mut place = place.clone();
        place.shape = vec![place.shape[0] + 100];
        value.map_array(place).map(|_| Item::other(self.name(), ()))
    }

    fn is_picklable(&self, _: &dyn Any) -> bool {
        false
    }

    fn write(&self, _: &str, _: &dyn Any, _: &mut Transaction<'_>) -> Result<(), Error> {
        unreachable!("never picklable")
    }
}

#[test]
fn a_pickler_maps_only_inside_its_own_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("overreach.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("first", &[1u64, 2], &[2]).unwrap();
    m.insert_array("second", &[3u64, 4], &[2]).unwrap();
    drop(m);
    let m = open_with(&path, vec![Arc::new(Overreaching)]);
    let error = m.get("first").unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::PlaceOutsideValue { .. }),
        "{error}"
    );
}
