//! Headers: the malformed headers of the Python library's suite, and plain pickles.

use mmappickle_container::{scan, Container, ContainerOptions, ErrorKind, TERMINATOR};

use super::{python_header, temp_path};

// The 13 malformed headers: each is refused with the offset of the first wrong byte, and the
// file is left as it was.
#[test]
fn bad_headers_are_refused_at_their_offset_and_left_untouched() {
    let good = {
        let mut file = python_header();
        file.extend(TERMINATOR);
        file
    };
    let with = |offset: usize, byte: u8| {
        let mut file = good.clone();
        file[offset] = byte;
        file
    };
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("one byte", vec![0x80], 1),
        ("not a pickle", b"hello world".to_vec(), 0),
        ("wrong protocol", with(1, 3), 1),
        ("missing FRAME", with(2, 0x28), 2),
        ("frame length cut short", good[..7].to_vec(), 3),
        ("wrong frame length", with(3, 12), 3),
        ("header frame cut short", good[..20].to_vec(), 20),
        ("missing version BININT", with(11, 0x4b), 11),
        ("missing POP after version", with(16, 0x28), 16),
        ("wrong version", with(12, 2), 12),
        ("missing commit BININT", with(17, 0x4b), 17),
        ("missing POP after commit", with(22, 0x28), 22),
        ("missing MARK", with(23, 0x30), 23),
    ];
    assert_eq!(cases.len(), 13);
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, offset) in cases {
        let path = temp_path(&dir, "bad");
        std::fs::write(&path, &bytes).unwrap();
        for readonly in [false, true] {
            let error = ContainerOptions::new()
                .readonly(readonly)
                .open(&path)
                .unwrap_err();
            // (Some of them are still a plain pickle of `{}`, which the error says.)
            assert!(
                matches!(error.kind(), ErrorKind::NotAContainer { .. }),
                "{name}: {error}"
            );
            assert_eq!(error.offset(), Some(offset), "{name}: {error}");
            assert!(error.to_string().contains("expected"), "{name}: {error}");
            assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name}: file changed");
        }
        // The pure scan agrees with the open.
        assert_eq!(scan(&bytes).unwrap_err().offset(), Some(offset), "{name}");
    }
}

// A plain pickle of a dict is reported as such (the facade converts it); a pickle of
// something else is not; neither file is touched.
#[test]
fn plain_pickles_are_reported_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_path(&dir, "plain.pickle");
    // pickle.dumps({'a': 1}, 2) and pickle.dumps([1], 2).
    let dict = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";
    let list = b"\x80\x02]q\x00K\x01a.";
    for (bytes, is_dict) in [(&dict[..], true), (&list[..], false)] {
        std::fs::write(&path, bytes).unwrap();
        let error = Container::open(&path).unwrap_err();
        assert_eq!(error.is_plain_pickle(), is_dict, "{error}");
        assert_eq!(error.offset(), Some(1), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}
