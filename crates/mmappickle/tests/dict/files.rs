//! Files as a crash or a tool leaves them (scratch files, empty and torn files), streamed
//! arrays, listings, values written in place.

use super::*;

// The scratch files that a killed convert (`<path>.converting-<pid>`) or vacuum
// (`.<name>.vacuum-<pid>`) left, when their process is gone, are removed by the next convert
// of the path (the read-write open of the plain pickle the killed one left) and by vacuum;
// those of a live process stay, and opens of an mmappickle file remove nothing.
#[test]
fn convert_and_vacuum_remove_stale_scratch_files() {
    let (dir, path) = temp_file("scratch.mmdpickle");
    // What `pickle.dump({'k': 1}, f, 4)` writes.
    let plain = codec::dumps(&Value::Dict(vec![(Value::from("k"), Value::Int(1))]));
    std::fs::write(&path, plain).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    // Another live process: a convert replaces a scratch file of its own process id.
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let live = sleeper.id();
    let stale = [
        dir.path()
            .join(format!("scratch.mmdpickle.converting-{dead}")),
        dir.path().join(format!(".scratch.mmdpickle.vacuum-{dead}")),
    ];
    let kept = [
        dir.path()
            .join(format!("scratch.mmdpickle.converting-{live}")),
        dir.path().join(format!(".scratch.mmdpickle.vacuum-{live}")),
    ];
    for file in stale.iter().chain(&kept) {
        std::fs::write(file, b"partial").unwrap();
    }
    let [converting, vacuuming] = &stale;
    let mut m = MmapDict::open(&path).unwrap();
    assert!(
        !converting.exists(),
        "the killed convert's file is still there"
    );
    assert!(vacuuming.exists(), "an open removed a vacuum's file");
    MmapDict::open(&path).unwrap();
    MmapDict::open_readonly(&path).unwrap();
    assert!(vacuuming.exists(), "an open removed a vacuum's file");
    m.vacuum().unwrap();
    assert!(
        !vacuuming.exists(),
        "the killed vacuum's file is still there"
    );
    for file in &kept {
        assert!(file.exists(), "{} was removed", file.display());
    }
    assert_eq!(m.get("k").unwrap().as_value(), Some(&Value::Int(1)));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

// A kill inside the very first open can leave an empty file (created, not yet written):
// a read-only open refuses it with an error at byte 0, a read-write open initialises it.
#[test]
fn an_empty_file_is_refused_read_only_and_initialised_read_write() {
    let (_dir, path) = temp_file("empty.mmdpickle");
    std::fs::write(&path, b"").unwrap();
    let error = MmapDict::open_readonly(&path).unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Container(_)), "{error}");
    assert_eq!(error.offset(), Some(0));
    assert!(error.to_string().contains("at byte offset 0"), "{error}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    let mut m = MmapDict::open(&path).unwrap();
    assert!(m.keys().unwrap().is_empty());
    m.insert("k", "v").unwrap();
    assert_eq!(
        MmapDict::open_readonly(&path).unwrap().keys().unwrap(),
        ["k"]
    );
}

// A torn last entry: read-only, the complete entries are read and the file is left as it
// is; read-write, the open repairs it and fsck reports what was dropped.
#[test]
fn fsck_repairs_a_torn_entry() {
    let (_dir, path) = temp_file("torn.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("kept", 1).unwrap();
    m.insert("torn", "x".repeat(100)).unwrap();
    drop(m);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 40).unwrap();
    drop(file);
    let torn = std::fs::read(&path).unwrap();
    let readonly = MmapDict::open_readonly(&path).unwrap();
    assert_eq!(readonly.keys().unwrap(), ["kept"]);
    let torn_at = readonly.torn_at().unwrap().unwrap();
    assert_eq!(readonly.value("kept").unwrap(), Value::Int(1));
    drop(readonly);
    assert_eq!(std::fs::read(&path).unwrap(), torn);
    let mut m = MmapDict::open(&path).unwrap();
    let report = m.fsck().unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.truncated_at, torn_at);
    assert_eq!(report.dropped_key.as_deref(), Some("torn"));
    assert_eq!(m.keys().unwrap(), ["kept"]);
    assert!(m.fsck().unwrap().is_clean());
}

// `MmapDict` can move to another thread.
#[test]
fn mmap_dict_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<MmapDict>();
    let (_dir, path) = temp_file("send.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("k", 1).unwrap();
    let value = std::thread::spawn(move || m.value("k").unwrap())
        .join()
        .unwrap();
    assert_eq!(value, Value::Int(1));
}

// The quick start example runs to the end (its own asserts check each step).
#[test]
fn quickstart_example_runs() {
    let (_dir, path) = temp_file("quickstart.mmdpickle");
    quickstart::run(&path).unwrap();
    let m = MmapDict::open_readonly(&path).unwrap();
    assert_eq!(m.keys().unwrap(), ["other_key", "test"]);
}

// ndarray in, ndarray view out; a Fortran-ordered array is stored in C order
// (`cargo test -p mmappickle --features ndarray`).
#[cfg(feature = "ndarray")]
#[test]
fn ndarray_round_trip() {
    let (_dir, path) = temp_file("ndarray.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    let c_order = ndarray::Array2::from_shape_fn((2, 3), |(i, j)| (i * 10 + j) as f64);
    m.insert_ndarray("c", &c_order).unwrap();
    m.insert_ndarray("f", &c_order.t()).unwrap();
    let map = m.array::<f64>("c").unwrap();
    assert_eq!(map.view().unwrap(), c_order.view().into_dyn());
    let map = m.array::<f64>("f").unwrap();
    assert_eq!(map.shape(), [3, 2]);
    assert_eq!(map.view().unwrap(), c_order.t().into_dyn());
}

/// The raw-data length in a `DataLength` error.
fn data_length(error: &mmappickle::Error) -> Option<(u64, u64)> {
    match error.kind() {
        ErrorKind::Array(array_error) => match array_error.kind() {
            mmappickle::array::ErrorKind::DataLength { found, expected } => {
                Some((*found, *expected))
            }
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn streamed_arrays_are_written_as_whole_ones() {
    let (_dir, whole_path) = temp_file("whole.mmdpickle");
    let streamed_path = whole_path.with_file_name("streamed.mmdpickle");
    // 3 MiB + a bit: pieces below, at and above the 1 MiB gathering size.
    let data: Vec<f64> = (0..400_003).map(|i| f64::from(i) * 0.25).collect();
    let raw: &[u8] = bytemuck::cast_slice(&data);
    for encoding in [ArrayEncoding::Compatible, ArrayEncoding::Portable] {
        let open = |path: &Path| MmapDict::options().encoding(encoding).open(path).unwrap();
        let mut whole = open(&whole_path);
        whole.insert("before", 1i64).unwrap();
        whole.insert_array("a", &data, &[data.len()]).unwrap();
        let mut streamed = open(&streamed_path);
        streamed.insert("before", 1i64).unwrap();
        streamed
            .insert_array_with("a", &f64::dtype(), &[data.len()], |emit| {
                let (small, rest) = raw.split_at(13);
                for byte in small.chunks(1) {
                    emit(byte)?;
                }
                let (large, rest) = rest.split_at((1 << 20) + 5);
                emit(large)?;
                for piece in rest.chunks(70_000) {
                    emit(piece)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(
            streamed.array::<f64>("a").unwrap().as_slice().unwrap(),
            data
        );
        drop((whole, streamed));
        assert!(
            std::fs::read(&whole_path).unwrap() == std::fs::read(&streamed_path).unwrap(),
            "{encoding:?}: the streamed file differs from the one written whole"
        );
        std::fs::remove_file(&whole_path).unwrap();
        std::fs::remove_file(&streamed_path).unwrap();
    }
}

#[test]
fn a_stream_of_the_wrong_length_or_failing_changes_nothing() {
    let (_dir, path) = temp_file("stream.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("kept", "value").unwrap();
    let before = std::fs::read(&path).unwrap();
    let dtype = i32::dtype();

    let short = m
        .insert_array_with("a", &dtype, &[4, 4], |emit| emit(&[0; 60]))
        .unwrap_err();
    assert_eq!(data_length(&short), Some((60, 64)), "{short}");

    let long = m
        .insert_array_with("a", &dtype, &[4, 4], |emit| {
            emit(&[0; 40])?;
            emit(&[0; 40])
        })
        .unwrap_err();
    assert_eq!(data_length(&long), Some((80, 64)), "{long}");

    let failed = m
        .insert_array_with("a", &dtype, &[4, 4], |emit| {
            emit(&[0; 16])?;
            Err(std::io::Error::other("the source went away"))
        })
        .unwrap_err();
    // The writer's own I/O error is the source, said once.
    let source = std::error::Error::source(&failed).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("the source went away"), "{failed}");
    assert!(!failed.to_string().contains("went away"), "{failed}");

    assert_eq!(m.keys().unwrap(), ["kept"]);
    drop(m);
    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
}

// An older live entry of a key (a replace cut short by a crash) is listed as shadowed by a
// read-only handle (a read-write open deletes it).
#[test]
fn listing_marks_an_older_live_duplicate_as_shadowed() {
    let (_dir, path) = temp_file("shadowed.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("k", 1).unwrap();
    m.insert("k", 2).unwrap();
    m.insert("other", 3).unwrap();
    let old = m.listing().unwrap().table().entries()[0].clone();
    assert!(!old.is_live());
    drop(m);
    assert!(MmapDict::open_readonly(&path)
        .unwrap()
        .listing()
        .unwrap()
        .entries()
        .all(|info| !info.shadowed));
    // The live flag is the entry's second-to-last byte (NEWTRUE when live).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(old.end() - 2) as usize] = 0x88;
    std::fs::write(&path, &bytes).unwrap();
    let listing = MmapDict::open_readonly(&path).unwrap().listing().unwrap();
    let shadowed: Vec<_> = listing
        .entries()
        .map(|info| (info.entry.key(), info.entry.is_live(), info.shadowed))
        .collect();
    assert_eq!(
        shadowed,
        [
            ("k", true, true),
            ("k", true, false),
            ("other", true, false)
        ]
    );
    assert_eq!(listing.n_live(), 2);
}

// The listing keeps kinds only for values that are not plain values: each entry still gets
// its own kind, in file order, and padding and entry listings get none.
#[test]
fn listing_gives_every_entry_its_kind() {
    let (_dir, path) = temp_file("kinds.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("a", 1).unwrap();
    m.insert_array("grid", &[1i32, 2, 3, 4], &[2, 2]).unwrap();
    m.insert("b", "text").unwrap();
    m.insert_masked("masked", &[1.5f64, 2.5], &[false, true], &[2])
        .unwrap();
    m.insert("c", vec![1, 2, 3]).unwrap();
    m.remove("a").unwrap();
    let listing = m.listing().unwrap();
    let kinds: Vec<_> = listing
        .entries()
        .map(|info| {
            let name = if info.entry.is_padding() {
                "padding".to_owned()
            } else {
                info.entry.key().to_owned()
            };
            (name, info.kind.map(ValueKind::name))
        })
        .collect();
    let expected: Vec<_> = [
        ("a", Some("value")),
        ("grid", Some("array")),
        ("b", Some("value")),
        ("masked", Some("masked")),
        ("c", Some("value")),
    ]
    .map(|(key, kind)| (key.to_owned(), kind))
    .into();
    let without_padding: Vec<_> = kinds
        .iter()
        .filter(|(name, _)| name != "padding")
        .cloned()
        .collect();
    assert_eq!(without_padding, expected);
    assert!(kinds
        .iter()
        .all(|(name, kind)| (name == "padding") == kind.is_none()));
    assert_eq!(listing.entries().len(), kinds.len());
    let array = listing
        .entries()
        .find(|info| info.entry.key() == "grid")
        .unwrap();
    let (offset, len) = array.data_range().unwrap();
    assert_eq!((offset % 64, len), (0, 16));
    assert!(m
        .listing_without_kinds()
        .unwrap()
        .entries()
        .all(|info| info.kind.is_none()));
}

// Values written in place by a caller, their length known only afterwards (as a Python
// pickler class writes): first in a batch, between buffered values, with memo indices; bytes
// that are not one whole value, memo indices out of range, MEMOIZE, a failing writer or a
// short write leave the file as it was.
#[test]
fn values_written_in_place_are_checked_before_the_commit() {
    use std::os::unix::fs::FileExt;

    let (_dir, path) = temp_file("written.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    // s = 'x'; [s, s]: EMPTY_LIST MARK SHORT_BINUNICODE 'x' BINPUT i BINGET i APPENDS
    let shared = |memo_start: i32| {
        let index = u8::try_from(memo_start).unwrap();
        let mut value = b"](\x8c\x01xq".to_vec();
        value.extend([index, b'h', index, b'e']);
        value
    };
    m.write(|tx| {
        tx.insert_written("first", |file, offset, memo_start| {
            let value = shared(memo_start);
            file.write_all_at(&value, offset)?;
            Ok((value.len() as u64, memo_start + 1))
        })?;
        tx.insert("between", 5)?;
        tx.insert_written("second", |file, offset, memo_start| {
            let value = shared(memo_start);
            file.write_all_at(&value, offset)?;
            Ok((value.len() as u64, memo_start + 1))
        })?;
        Ok(())
    })
    .unwrap();
    let pair = Value::List(vec![Value::from("x"), Value::from("x")]);
    assert_eq!(m.value("first").unwrap(), pair);
    assert_eq!(m.value("second").unwrap(), pair);
    assert_eq!(m.value("between").unwrap(), Value::Int(5));
    let before = std::fs::read(&path).unwrap();

    let cases: [(&str, Vec<u8>, i32); 4] = [
        ("cut short", b"](\x8c\x01x".to_vec(), 0),
        ("memo index below the start", b"\x8c\x01xq\x00".to_vec(), 1),
        ("memo_max too low", shared(2), 0),
        ("MEMOIZE", b"\x8c\x01x\x94".to_vec(), 1),
    ];
    for (case, value, memo_past_start) in cases {
        let error = m
            .insert_written("bad", |file, offset, memo_start| {
                file.write_all_at(&value, offset)?;
                Ok((value.len() as u64, memo_start + memo_past_start))
            })
            .unwrap_err();
        assert!(
            error.to_string().contains("at byte offset"),
            "{case}: {error}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{case}");
    }
    let error = m
        .insert_written("bad", |_, _, _| {
            Err(std::io::Error::other("pickler failed"))
        })
        .unwrap_err();
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("pickler failed"), "{error}");
    // Claims more bytes than it wrote.
    m.insert_written("bad", |file, offset, memo_start| {
        file.write_all_at(b"K\x01", offset)?;
        Ok((1000, memo_start))
    })
    .unwrap_err();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(m.keys().unwrap(), ["first", "between", "second"]);
}

// Items of a split list pickle stored by `insert_split` make the very bytes that storing
// each item's pickle makes, memo numbering included; an item not split out stores nothing.
#[test]
fn split_items_are_stored_as_their_pickles_are() {
    // x = 'aaa'; y = 'bbb'; pickle.dumps([x, y, [y, x, x], [x, x, y]], 4): the last two
    // items read their own memo once split out.
    let list = b"\x80\x04\x95%\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x03aaa\x94\x8c\x03bbb\x94]\x94(h\x02h\x01h\x01e]\x94(h\x01h\x01h\x02ee.";
    let split = mmappickle::split_list_pickle(list).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = |name: &str, by_split: bool| {
        let path = dir.path().join(name);
        let mut m = MmapDict::open(&path).unwrap();
        m.write(|tx| {
            for item in [2, 0, 3, 1, 3] {
                let key = format!("k{item}");
                if by_split {
                    assert!(tx.insert_split(&key, &split, item)?);
                } else {
                    tx.insert_pickle(&key, split.get(item).unwrap())?;
                }
            }
            assert!(!tx.insert_split("past the end", &split, 4)?);
            Ok(())
        })
        .unwrap();
        (std::fs::read(&path).unwrap(), m)
    };
    let (by_split, m) = store("split.mmdpickle", true);
    let (by_pickle, _) = store("pickle.mmdpickle", false);
    assert_eq!(by_split, by_pickle);
    assert_eq!(m.keys().unwrap(), ["k2", "k0", "k1", "k3"]);
    let (aaa, bbb) = (Value::from("aaa"), Value::from("bbb"));
    let expected = Value::List(vec![aaa.clone(), aaa, bbb]);
    assert_eq!(m.value("k3").unwrap(), expected);
}
