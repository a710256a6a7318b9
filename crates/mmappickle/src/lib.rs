//! A dictionary stored in a file that is at once a Python pickle of the dict and a store of
//! memory-mapped numpy arrays: the Rust side of Python's [`mmappickle`] 1.0, byte-compatible
//! with it.
//!
//! [`mmappickle`]: https://pypi.org/project/mmappickle/
//!
//! [`MmapDict`] feels like the Python library's `mmapdict`: keys are strings, values are
//! generic pickled [`Value`]s or numpy arrays, and arrays are not loaded but mapped, so an
//! array far larger than RAM can be read and written in place. The whole file stays one valid
//! pickle (protocol 4): `pickle.load(open(path, "rb"))` on any machine with numpy returns the
//! dict.
//!
//! ```
//! use mmappickle::{MmapDict, Value};
//! use mmappickle::stubs::EmptyArray;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("test.mmdpickle");
//! let mut m = MmapDict::open(&path)?;                        // creates it if missing
//! m.insert("a_sample_key", "value")?;
//! m.insert("other_key", vec![1i64, 2, 3])?;
//! assert_eq!(m.get("a_sample_key")?, Value::from("value"));
//! m.remove("a_sample_key")?;
//! assert_eq!(m.keys()?, ["other_key"]);
//!
//! m.insert_array("test", &[1u8, 2, 3], &[3])?;               // read by Python as a numpy.memmap
//! let mut a = m.array_mut::<u8>("test")?;                     // a writable map of the file
//! a.as_slice_mut()?[1] = 4;
//! drop(a);
//! m.insert_stub("test_large", EmptyArray::new::<f64>(&[300, 300, 300]))?; // no RAM, no disk
//! m.remove("test_large")?;
//! m.vacuum()?;                                                // refused while maps are alive
//!
//! let mut ro = MmapDict::open_readonly(&path)?;               // every change is an Err
//! assert_eq!(ro.array::<u8>("test")?.to_vec(), [1, 4, 3]);
//! assert!(ro.insert("x", 1).is_err());
//! # Ok::<(), mmappickle::Error>(())
//! ```
//!
//! ## What a key holds
//!
//! [`MmapDict::get`] returns an [`Item`]: a generic [`Value`] (decoded without running or
//! importing anything: a `datetime` stays an object node), a mapped array ([`MappedBytes`],
//! any dtype), or a mapped masked array. Typed shortcuts: [`MmapDict::value`],
//! [`MmapDict::array`], [`MmapDict::array_mut`], [`MmapDict::masked`]. Each failure has its
//! own [`ErrorKind`]: a missing key, an entry of another kind, a wrong element type, an
//! over-long key (more than 255 UTF-8 bytes), a change to a read-only dict. Keys are `&str`,
//! so a key is always valid UTF-8; a file whose key bytes are not is reported as a damaged
//! entry.
//!
//! Arrays go in from a slice ([`MmapDict::insert_array`]), from raw bytes of any fixed-size
//! dtype ([`MmapDict::insert_array_bytes`]), piece by piece from a source larger than RAM
//! ([`MmapDict::insert_array_with`]), as a masked array, or as a stub filled later through
//! [`MmapDict::array_mut`] or, with no page fault per page of its hole,
//! [`MmapDict::write_rows`] (`pwrite`).
//!
//! What a key holds is told by the dict's [`Pickler`]s, the Rust counterpart of the Python
//! library's picklers: [`ArrayPickler`], [`MaskedArrayPickler`] and the catch-all
//! [`GenericPickler`] by default, tried in decreasing priority. A kind of one's own joins them
//! through [`MmapDictOptions::picklers`]; [`MmapDict::insert_any`] stores a value by the
//! first pickler that takes it, and [`MmapDict::get`] returns what the first valid one read
//! ([`Item::Other`] for a kind of one's own). The Python package's picklers written for the
//! library are read through the same trait.
//!
//! A generic value that holds numpy arrays pickled by numpy itself (say a list of arrays)
//! stays a [`Value`]; [`OwnedArray::from_value`] reads such arrays into memory.
//!
//! ## serde types
//!
//! With the `serde` feature (on by default), a `Serialize` type is stored as the plain
//! Python value it describes, so Python sees an ordinary dict; reading back accepts what
//! Python would naturally write (a tuple for a `Vec`, an int for an `f64`, a set for a
//! `HashSet`), and a mismatch names the path of the field. [`to_value`] / [`from_value`]
//! convert without a file, and [`Value`] itself implements `Serialize` / `Deserialize`
//! (to turn a stored value into JSON or TOML).
//!
//! ```
//! use mmappickle::{ErrorKind, MmapDict, Value};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Step { gain: f64, label: Option<String> }
//!
//! let dir = tempfile::tempdir()?;
//! let mut m = MmapDict::open(dir.path().join("params.mmdpickle"))?;
//! let scan = vec![Step { gain: 0.5, label: None }, Step { gain: 2.0, label: Some("hi".into()) }];
//! m.insert_serde("scan", &scan)?;
//! // Python's `m["scan"]`:
//! assert_eq!(m.value("scan")?.to_string(),
//!            "[{'gain': 0.5, 'label': None}, {'gain': 2.0, 'label': 'hi'}]");
//! assert_eq!(m.get_serde::<Vec<Step>>("scan")?, scan);
//!
//! // What Python may have written instead: a tuple, an int for the float.
//! let step: Value = [("gain", Value::Int(3)), ("label", Value::None)].into_iter().collect();
//! m.insert("scan", Value::tuple([step]))?;
//! assert_eq!(m.get_serde::<Vec<Step>>("scan")?, [Step { gain: 3.0, label: None }]);
//!
//! let step: Value = [("gain", "loud")].into_iter().collect();
//! m.insert("scan", vec![step])?;
//! let error = m.get_serde::<Vec<Step>>("scan").unwrap_err();
//! assert!(matches!(error.kind(), ErrorKind::Serde(_)));
//! assert_eq!(error.kind().to_string(), "scan[0].gain: expected float, found str");
//! # Ok::<(), mmappickle::Error>(())
//! ```
//!
//! ## Maps: what is safe, and what another process changing the file means
//!
//! A map covers exactly an array's raw bytes, checked to lie inside the file when it is made
//! under the file's lock. The file never shrinks under a live entry except by vacuum, and
//! [`MmapDict::vacuum`] is refused ([`ErrorKind::MapsAlive`]) while any map handed out by that
//! dict is alive. Vacuum writes the compacted file beside and renames it over the path, so
//! even a vacuum by another handle or process leaves existing maps valid: they keep mapping
//! the old file, and no longer see changes. Writes through a map by this or another process
//! change element values only; every bit pattern is a valid element (`bool` arrays are
//! [`Bool`] bytes, validated by [`Bool::get`]). Array data is not locked: coordinate
//! concurrent writers of the same array yourself, as in Python.
//!
//! Inside one process a writable map of an array never lives beside another map of the same
//! bytes (through any handle or snapshot of the file): [`MmapDict::array_mut`] is refused
//! ([`ErrorKind::MapConflict`]) while such a map lives, and every other map while a writable
//! one does. The maps themselves are made in this crate's one `unsafe` module, which argues
//! both conditions.
//!
//! Python's own `vacuum` shifts entries in place: do not vacuum with Python while a Rust
//! process holds maps of the file.
//!
//! ## Threads and processes: snapshots and batches
//!
//! Every read takes the file's *shared* `flock`, every change its *exclusive* one (the lock
//! Python's `fcntl.flock(f, LOCK_EX)` takes, so Rust and Python processes exclude each
//! other), and the entry table is re-read only when the commit number or the length
//! changed. Changes made by one handle or process are seen by the others at their next
//! operation.
//!
//! **Read snapshots.** [`MmapDict::read`] takes the shared lock once and sees one state of
//! the file through all its reads ([`ReadSnapshot::get`], `value`, `array`, `masked`,
//! `keys`, `iter`, `len`, `contains_key`): values are read from a map of the file, with no
//! system call and no check per read. Snapshots of many threads and processes read side by
//! side; a writer waits until they end (and keeps waiting while they keep overlapping:
//! keep them short). Maps handed out stay valid after the snapshot ends. A single read
//! ([`MmapDict::get`] and the others) is a snapshot of one read: three system calls
//! (`flock`, `fstat`, unlock).
//!
//! **Reads without the lock.** [`MmapDict::get`] of a small generic value (at most
//! [`UNLOCKED_READ_MAX`] bytes) of an entry the handle has seen copies it from the map of
//! its last lock hold, with no system call, when the file shows no change before and after
//! the copy (and [`UnlockedValue::locate_array`] finds an array's parts the same way): the same commit number (every change of the key set moves it on, a vacuum by
//! rename marks the old file first), the entry's head, key and live trailer as they were.
//! The bytes of a live value never change (a replace appends), so the copy is what a read
//! under the lock would have read at that moment; otherwise `get` reads under the lock.
//! It needs the cooperation the maps need: no vacuum *in place* (the Python library's)
//! while other handles have the file open, which the library itself requires. Dicts with
//! picklers of their own always read under the lock ([`MmapDict::with_unlocked_value`]).
//!
//! **Write batches.** [`MmapDict::write`] (or [`MmapDict::transaction`] and
//! [`Transaction::commit`]) makes many changes under one exclusive lock, written in large
//! pieces and committed together. If the closure returns an error or panics, or the
//! transaction is dropped, the file is left as it was, byte for byte. What a batch
//! guarantees when the process dies inside it:
//!
//! - all its inserts and replaces become visible at once, by one 11-byte write over the old
//!   terminator (the commit point): before it, the file is the dict before the batch;
//! - its removes (a remove flips one byte of an older entry) follow the commit, one by one
//!   in the order asked: a kill between them leaves the batch's inserts and replaces, the
//!   first removes done and the later ones not yet (never a remove without the batch's
//!   inserts). A remove of a key the batch itself inserted, or of a key it replaces, is
//!   atomic with the commit;
//! - [`Durability::Flush`] syncs twice per batch (before and after the commit point),
//!   whatever its size.
//!
//! ```
//! use std::sync::Arc;
//! use mmappickle::{MmapDict, Value};
//!
//! let dir = tempfile::tempdir()?;
//! let mut m = MmapDict::open(dir.path().join("batch.mmdpickle"))?;
//! m.write(|tx| {                                   // one lock, one commit
//!     for i in 0..100 {
//!         tx.insert(&format!("key{i}"), i)?;
//!     }
//!     tx.remove("key0")?;
//!     Ok(())
//! })?;
//!
//! let m = Arc::new(m);                             // reads take &self: no Mutex
//! let threads: Vec<_> = (0..4)
//!     .map(|t| {
//!         let m = Arc::clone(&m);
//!         std::thread::spawn(move || -> Result<i64, mmappickle::Error> {
//!             let r = m.read()?;                   // one shared lock for all reads below
//!             let mut sum = 0;
//!             for i in (1 + t..100).step_by(4) {
//!                 if let Value::Int(v) = r.value(&format!("key{i}"))? {
//!                     sum += v;
//!                 }
//!             }
//!             Ok(sum)
//!         })
//!     })
//!     .collect();
//! let total: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum::<Result<i64, _>>()?;
//! assert_eq!(total, (1..100).sum::<i64>());
//! # Ok::<(), mmappickle::Error>(())
//! ```
//!
//! **Why reads take `&self` and changes `&mut self`.** [`MmapDict`] is [`Send`] and
//! [`Sync`]: its cached table and the count of open snapshots sit behind a mutex that a
//! read holds only to begin and to end, so threads sharing one `Arc<MmapDict>` read in
//! parallel. Changes take `&mut self`: a change needs the exclusive lock, which on a file
//! shared by the snapshots of this handle would convert their shared lock under them; the
//! borrow checker thus proves that no snapshot of the handle is open during a change,
//! with no run-time wait. Threads that write share the dict behind a `Mutex` or
//! `RwLock`, or open a handle each (each handle locks on its own).
//!
//! ## Compatibility: who reads what
//!
//! | written with | Python `mmapdict` (numpy 1.x) | `pickle.load`, numpy 1.x to 2.2 | `pickle.load`, numpy >= 2.3 |
//! |---|---|---|---|
//! | [`ArrayEncoding::Compatible`] (default) | arrays as `numpy.memmap` | yes (deprecation warnings on 2.x) | no (binary `fromstring` was removed) |
//! | [`ArrayEncoding::Portable`] | arrays as ordinary in-memory arrays | yes | yes |
//! | masked arrays | `MaskedArray` over memmaps | yes | no |
//!
//! Both encodings are mapped by this crate. Stubs are arrays like the others once written.
//! Opening a plain pickle of a dict (`pickle.dump(d, f)`, any protocol) read-write converts
//! it, as Python does, numpy arrays becoming mapped entries; read-only it is
//! [`ErrorKind::PlainPickleReadOnly`].
//!
//! ## Tools
//!
//! [`MmapDict::listing`] gives every entry with what it holds ([`ValueKind`], from the one
//! classifier that [`MmapDict::get`] uses too), [`MmapDict::with_disassembly`] each value's
//! opcodes at their file offsets, [`MmapDict::is_container`] whether a file is one, [`loads`]
//! and [`dis`] read plain pickles: the `mmappickle` command needs nothing else.
//!
//! ## Crates
//!
//! The layers are re-exported as modules, for those who want one: [`codec`] (pickle
//! opcodes, [`Value`]), [`container`] (file layout, locking, vacuum, fsck),
//! [`array`](mod@array) (dtypes, maps), [`stubs`] ([`EmptyArray`]).

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod dict;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod item;
mod picklers;
mod scalar;
#[cfg(feature = "serde")]
mod serde_values;

#[cfg(feature = "serde")]
pub use mmappickle_codec::{from_value, to_value, SerdeError};
pub use {
    crate::{
        dict::{
            loads, Disassembly, EntryInfo, Iter, Listing, LockHold, MmapDict, MmapDictOptions,
            ReadSnapshot, StoredValue, Transaction, UnlockedValue, UNLOCKED_READ_MAX,
        },
        error::{message_with_sources, Error, ErrorKind},
        item::{
            decode_any_value, decode_value, locate_value, refuse_malformed, ArrayData, ArrayPlace,
            Item, Located, MaskedArray, MaskedBytes, ValuePlace, VALUE_PICKLE_HEAD,
            VALUE_PICKLE_TAIL,
        },
        picklers::{ArrayPickler, GenericPickler, MaskedArrayPickler, OtherValue, Pickler},
        scalar::Scalar,
    },
    mmappickle_array::{
        self as array, half::f16, ArrayEncoding, ArrayHeader, ArrayLayout, Bool, ByteOrder, DType,
        Element, Kind, MappedArray, MappedArrayMut, MappedBytes, OwnedArray, OwnedMasked,
        ValueKind, DATA_ALIGN,
    },
    mmappickle_codec::{
        self as codec, decode_entry_value, dis, entry_value_from_pickle, split_list_pickle,
        Construct, DisOp, EncodedValue, Global, JoinedEntries, Limits, Object, SplitList, Value,
        ValueWriter,
    },
    mmappickle_container::{
        self as container, Durability, Entry, FsckReport, VacuumReport, FORMAT_VERSION, MAX_KEY_LEN,
    },
    mmappickle_stubs::{self as stubs, EmptyArray},
};
