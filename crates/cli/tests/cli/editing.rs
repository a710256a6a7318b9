//! Commands that change a file (`set`, `rm`, `stub`, `vacuum`, `fsck`, `convert`), and
//! readers that do not hold them off.

use std::process::Command;

use crate::{fails, json_of, ok, python_mmappickle, run_python};

// set stores what JSON describes; get and Python mmappickle read it back.
#[test]
fn set_then_read_back_here_and_in_python() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let value = r#"{"name": "x", "n": [1, 2.5, {"int": "-99999999999999999999"}],
        "t": {"tuple": [true, null]}, "b": {"bytes": "AAEC"},
        "d": {"dict": [[{"tuple": [1, 2]}, {"set": [3]}]]}, "f": {"float": "-inf"}}"#;
    ok(&["set", "new.mmdpickle", "k", "--json", value], dir.path());
    ok(
        &["set", "new.mmdpickle", "s", "--json", "\"text\""],
        dir.path(),
    );
    // An object node becomes the call Python makes when it loads it.
    let ordered_dict = r#"{"object": {"callable": {"global": ["collections", "OrderedDict"]},
        "args": [], "dictitems": [["z", 1], ["a", 2]]}}"#;
    ok(
        &["set", "new.mmdpickle", "od", "--json", ordered_dict],
        dir.path(),
    );
    // Replacing a key keeps one live entry.
    ok(
        &["set", "new.mmdpickle", "s", "--json", "\"again\""],
        dir.path(),
    );
    let got = json_of(&ok(&["get", "--json", "new.mmdpickle", "k"], dir.path()));
    // Plain objects come back in the general dict form.
    let expected = json_of(
        r#"{"dict": [["name", "x"], ["n", [1, 2.5, {"int": "-99999999999999999999"}]],
        ["t", {"tuple": [true, null]}], ["b", {"bytes": "AAEC"}],
        ["d", {"dict": [[{"tuple": [1, 2]}, {"set": [3]}]]}], ["f", {"float": "-inf"}]]}"#,
    );
    assert_eq!(got, expected);
    let printed = run_python(
        &python_mmappickle(),
        dir.path(),
        "from mmappickle import mmapdict\n\
         m = mmapdict('new.mmdpickle', True)\n\
         print(sorted(m.keys()), m['s'], repr(m['od']))\n\
         print(m['k'])\n",
    );
    assert_eq!(
        printed,
        "['k', 'od', 's'] again OrderedDict([('z', 1), ('a', 2)])\n{'name': 'x', 'n': [1, 2.5, -99999999999999999999], 't': (True, None), \
         'b': b'\\x00\\x01\\x02', 'd': {(1, 2): {3}}, 'f': -inf}\n"
    );
    // `--json -` reads the value from stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
        .args(["set", "new.mmdpickle", "from_stdin", "--json", "-"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(b"{\"tuple\": [1e-7]}")
            .expect("write stdin");
    }
    assert!(child.wait().expect("it ends").success());
    assert_eq!(
        ok(&["get", "new.mmdpickle", "from_stdin"], dir.path()),
        "(1e-07,)\n"
    );
    ok(&["rm", "new.mmdpickle", "from_stdin"], dir.path());
    // A value starting with `-` is a value, not a flag.
    for (json, printed) in [("-7", "-7\n"), ("-2.5e3", "-2500.0\n")] {
        ok(
            &["set", "new.mmdpickle", "negative", "--json", json],
            dir.path(),
        );
        assert_eq!(
            ok(&["get", "new.mmdpickle", "negative"], dir.path()),
            printed
        );
    }
    ok(&["rm", "new.mmdpickle", "negative"], dir.path());
    // rm, then the key is gone and a second rm fails.
    ok(&["rm", "new.mmdpickle", "s"], dir.path());
    let err = fails(&["rm", "new.mmdpickle", "s"], dir.path(), 1);
    assert!(err.contains("no key \"s\""), "{err}");
    let n_keys = || {
        json_of(&ok(&["ls", "--json", "new.mmdpickle"], dir.path()))
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(n_keys(), Some(2));
    // Several keys go in one batch: a missing one fails it, and none is deleted.
    let err = fails(
        &["rm", "new.mmdpickle", "k", "missing", "od"],
        dir.path(),
        1,
    );
    assert!(err.contains("no key \"missing\""), "{err}");
    assert_eq!(n_keys(), Some(2));
    ok(&["rm", "new.mmdpickle", "k", "od"], dir.path());
    assert_eq!(n_keys(), Some(0));
}

// Stubs, vacuum, fsck and convert change the file as they say.
#[test]
fn stub_vacuum_fsck_convert() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path();
    ok(
        &[
            "stub",
            "f.mmdpickle",
            "big",
            "--dtype",
            "float32",
            "--shape",
            "200,300,400",
        ],
        path,
    );
    ok(&["set", "f.mmdpickle", "small", "--json", "[1]"], path);
    let rows = json_of(&ok(&["ls", "--json", "f.mmdpickle"], path));
    assert_eq!(rows[0]["shape"], serde_json::json!([200, 300, 400]));
    assert_eq!(rows[0]["bytes"], 200 * 300 * 400 * 4);
    assert_eq!(rows[0]["aligned"], true);
    assert!(
        ok(&["get", "f.mmdpickle", "big"], path).contains("[0.0, 0.0, 0.0, ..., 0.0, 0.0, 0.0]")
    );
    // Vacuum gives the stub's space back once it is deleted.
    ok(&["rm", "f.mmdpickle", "big"], path);
    let report = ok(&["vacuum", "f.mmdpickle"], path);
    assert!(report.contains("removed"), "{report}");
    let size = std::fs::metadata(path.join("f.mmdpickle"))
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    assert!(size < 1000, "vacuumed to {size} bytes");
    // A torn last entry is cut by fsck; the complete ones survive.
    ok(
        &[
            "set",
            "f.mmdpickle",
            "tail",
            "--json",
            "\"some text to tear\"",
        ],
        path,
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path.join("f.mmdpickle"))
        .expect("open");
    file.set_len(size + 20).expect("truncate");
    drop(file);
    let listed = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
        .args(["ls", "f.mmdpickle"])
        .current_dir(path)
        .output()
        .expect("run ls");
    assert!(listed.status.success());
    let warning = String::from_utf8_lossy(&listed.stderr);
    assert!(warning.contains("torn at byte offset"), "{warning}");
    assert!(warning.contains("mmappickle fsck"), "{warning}");
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("tail"));
    let report = ok(&["fsck", "f.mmdpickle"], path);
    assert!(report.contains("repaired"), "{report}");
    assert_eq!(ok(&["get", "f.mmdpickle", "small"], path), "[1]\n");
    assert!(ok(&["fsck", "f.mmdpickle"], path).contains("clean"));
    // convert: a plain pickle of a dict, with a numpy array that becomes mapped.
    run_python(
        &python_mmappickle(),
        path,
        "import pickle, numpy as np\n\
         pickle.dump({'a': 1, 'arr': np.arange(6.0).reshape(2, 3)}, open('plain.pkl', 'wb'), protocol=5)\n",
    );
    ok(&["convert", "plain.pkl", "out.mmdpickle"], path);
    let rows = json_of(&ok(&["ls", "--json", "out.mmdpickle"], path));
    assert_eq!(rows[1]["kind"], "array");
    assert_eq!(ok(&["get", "out.mmdpickle", "a"], path), "1\n");
    let err = fails(&["convert", "plain.pkl", "out.mmdpickle"], path, 1);
    assert!(err.contains("exists"), "{err}");
    ok(&["convert", "plain.pkl"], path);
    assert!(ok(&["convert", "plain.pkl"], path).contains("already"));
}

// `dump` and `dis` read under the lock and print after releasing it: a reader whose output
// is not read (a paused pager) does not hold a writer off. The reader's first output byte is
// read (so it is printing), then a writer must finish while its output sits in a full pipe.
#[test]
fn paused_readers_do_not_hold_writers_off() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let mut m = mmappickle::MmapDict::open(path.join("big.mmdpickle")).expect("open");
    let mut transaction = m.transaction().expect("transaction");
    for idx in 0..4000 {
        let text = format!("a string long enough to fill the output pipe, number {idx}");
        transaction
            .insert(&format!("key{idx}"), text)
            .expect("insert");
    }
    transaction.commit().expect("commit");
    drop(m);
    for command in ["dump", "dis"] {
        let mut reader = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
            .args([command, "big.mmdpickle"])
            .current_dir(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut first = [0u8; 1];
        let mut stdout = reader.stdout.take().expect("piped");
        stdout.read_exact(&mut first).expect("the reader prints");
        let mut writer = Command::new(env!("CARGO_BIN_EXE_mmappickle"))
            .args(["set", "big.mmdpickle", "during", "--json", "1"])
            .current_dir(path)
            .spawn()
            .expect("the binary runs");
        // Generous: a writer held off by the reader would wait forever.
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = writer.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{command}: the writer is held off"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{command}");
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).expect("read");
        assert!(reader.wait().expect("wait").success());
        assert!(rest.len() > 64 << 10, "{command}: {} bytes", rest.len());
    }
}
