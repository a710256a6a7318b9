//! The remote crate against real servers the tests start on loopback and stop when done:
//!
//! - fixtures: every file of `tests/fixtures/` read over nginx, moto's S3 and `file://`
//!   equals its local reading;
//! - counts (nginx's access log): open + keys of a 10,000-entry file, rows of a 1 GiB array,
//!   conditional requests, a file replaced on the server;
//! - hostile servers of our own: truncated body, lying `Content-Range`, 500 then 200, silence,
//!   an object swapped mid-read, entries claiming 2^63 bytes.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mmappickle::stubs::EmptyArray;
use mmappickle::{ArrayData, Item, MmapDict, Value};
use mmappickle_remote::{ErrorKind, RemoteDict, RemoteOptions};
use support::hostile::{Answer, Hostile};
use support::{Moto, Nginx};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "mmdpickle"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "fixtures missing in {}", dir.display());
    files
}

/// The remote reading of `remote` equals the local reading of `local`, key by key.
fn assert_reads_alike(local: &Path, remote: Result<RemoteDict, mmappickle_remote::Error>) {
    let name = local.display();
    let local = match MmapDict::open_readonly(local) {
        Ok(local) => local,
        Err(local_error) => {
            let remote_error = remote.expect_err("a file the local open refuses");
            println!("{name}: both refuse it: {local_error} / {remote_error}");
            return;
        }
    };
    let remote = remote.unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!(remote.keys(), local.keys().unwrap(), "{name}");
    assert_eq!(remote.len(), local.len().unwrap(), "{name}");
    for key in local.keys().unwrap() {
        assert!(remote.contains_key(&key));
        let mapped = |array: &ArrayData| array.as_mapped().is_some();
        match (local.get(&key), remote.get(&key)) {
            (Ok(Item::Value(a)), Ok(Item::Value(b))) => assert_eq!(a, b, "{name} {key}"),
            (Ok(Item::Array(a)), Ok(Item::Array(b))) => {
                assert!(mapped(&a) && !mapped(&b), "{name} {key}: mapped, read");
                assert_eq!(a.into_owned(), b.into_owned(), "{name} {key}")
            }
            (Ok(Item::Masked(a)), Ok(Item::Masked(b))) => {
                assert_eq!(a.data.into_owned(), b.data.into_owned(), "{name} {key}");
                assert_eq!(a.mask.into_owned(), b.mask.into_owned(), "{name} {key}");
            }
            (Err(a), Err(b)) => assert_eq!(a.offset(), b.offset(), "{name} {key}: {a} / {b}"),
            (a, b) => panic!("{name} {key}: local {a:?}, remote {b:?}"),
        }
        assert_eq!(
            local.raw_value(&key).unwrap(),
            remote.raw_value(&key).unwrap()
        );
    }
}

#[test]
fn every_fixture_over_http_equals_its_local_reading() {
    let nginx = Nginx::start();
    for fixture in fixtures() {
        let name = fixture.file_name().unwrap().to_str().unwrap();
        std::fs::copy(&fixture, nginx.root().join(name)).unwrap();
        // Small blocks, so that entries and arrays cross block boundaries.
        let options = RemoteOptions::new().block_size(4096).cache_budget(8192);
        assert_reads_alike(&fixture, RemoteDict::open_with(&nginx.url(name), options));
        assert_reads_alike(&fixture, RemoteDict::open(&nginx.url(name)));
    }
}

#[test]
fn every_fixture_over_file_urls_equals_its_local_reading() {
    for fixture in fixtures() {
        let url = format!("file://{}", fixture.canonicalize().unwrap().display());
        assert_reads_alike(&fixture, RemoteDict::open(&url));
    }
}

#[test]
fn every_fixture_over_s3_equals_its_local_reading() {
    let moto = Moto::start();
    let files: Vec<(String, PathBuf)> = fixtures()
        .into_iter()
        .map(|path| {
            (
                format!("fixtures/{}", path.file_name().unwrap().to_str().unwrap()),
                path,
            )
        })
        .collect();
    moto.upload("mmappickle-test", &files);
    for (name, path) in &files {
        let url = format!("s3://mmappickle-test/{name}");
        assert_reads_alike(path, RemoteDict::open_with(&url, moto.options()));
    }
    let missing = RemoteDict::open_with("s3://mmappickle-test/missing", moto.options());
    assert!(matches!(missing.unwrap_err().kind(), ErrorKind::Request(_)));
}

#[test]
fn open_and_keys_of_10000_small_entries_take_at_most_3_requests() {
    let nginx = Nginx::start();
    let path = nginx.root().join("many.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    for idx in 0..10_000i64 {
        m.insert(&format!("key{idx}"), idx).unwrap();
    }
    drop(m);
    let remote = RemoteDict::open(&nginx.url("many.mmdpickle")).unwrap();
    assert_eq!(remote.keys().len(), 10_000);
    let accesses = nginx.accesses();
    println!("open + keys: {accesses:?}");
    assert!(accesses.len() <= 3, "{} requests", accesses.len());
    assert_eq!(remote.transfer().requests as usize, accesses.len());
    assert_eq!(remote.get("key9999").unwrap(), Value::from(9999i64));
    // The value was in the block the open read.
    assert_eq!(nginx.accesses().len(), accesses.len());
}

#[test]
fn rows_of_a_1_gib_array_fetch_only_their_bytes() {
    let nginx = Nginx::start();
    let path = nginx.root().join("big.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("before", "small").unwrap();
    // 1 GiB of f64 in 131072 rows of 8 KiB, on disk as a hole.
    m.insert_stub("big", EmptyArray::new::<f64>(&[131_072, 1024]))
        .unwrap();
    m.insert("after", vec![1i64, 2, 3]).unwrap();
    let rows = 70_000..70_128; // 1 MiB
    {
        let mut big = m.array_mut::<f64>("big").unwrap();
        for idx in rows.start * 1024..rows.end * 1024 {
            big.set(idx, idx as f64).unwrap();
        }
        big.flush().unwrap();
    }
    drop(m);
    let remote = RemoteDict::open(&nginx.url("big.mmdpickle")).unwrap();
    assert_eq!(remote.keys(), ["before", "big", "after"]);
    let open_accesses = nginx.accesses().len();
    let open_bytes: u64 = nginx.accesses().iter().map(|access| access.bytes).sum();
    println!("open: {open_accesses} requests, {open_bytes} bytes");
    let part = remote.array_rows("big", rows.clone()).unwrap();
    assert_eq!(part.shape, [128, 1024]);
    let expected: Vec<f64> = (rows.start * 1024..rows.end * 1024)
        .map(|idx| idx as f64)
        .collect();
    assert_eq!(part.to_vec::<f64>().unwrap(), expected);
    let after_open = &nginx.accesses()[open_accesses..];
    let bytes: u64 = after_open.iter().map(|access| access.bytes).sum();
    println!("rows: {} requests, {bytes} bytes", after_open.len());
    assert!(bytes <= 2 << 20, "{bytes} bytes for 1 MiB of rows");
    assert_eq!(bytes, 1 << 20, "rows are fetched exactly, not by blocks");
    // The same rows into a buffer of the caller's; a buffer of another length is refused.
    let mut buffer = vec![0u8; 1 << 20];
    let place = remote
        .array_place("big")
        .unwrap()
        .rows(rows.clone())
        .unwrap();
    remote.read_into(&place, &mut buffer).unwrap();
    assert_eq!(buffer, part.data);
    let short = remote.read_into(&place, &mut buffer[1..]);
    assert!(matches!(
        short.unwrap_err().kind(),
        ErrorKind::BufferLength { .. }
    ));
    assert_eq!(remote.array_place("big").unwrap().shape, [131_072, 1024]);
    assert_eq!(remote.get("after").unwrap(), Value::from(vec![1i64, 2, 3]));
    // Every request after the first is conditional on the version.
    let accesses = nginx.accesses();
    assert_eq!(accesses[0].if_match, "-");
    assert!(
        accesses[1..].iter().all(|access| access.if_match != "-"),
        "{accesses:?}"
    );
    let out_of_range = remote.array_rows("big", 131_000..131_073).unwrap_err();
    assert!(matches!(
        out_of_range.kind(),
        ErrorKind::RowsOutOfRange { .. }
    ));
    assert!(matches!(
        remote.array_rows("after", 0..1).unwrap_err().kind(),
        ErrorKind::NotAnArray { .. }
    ));
}

#[test]
fn a_file_replaced_on_the_server_gives_a_version_error() {
    let nginx = Nginx::start();
    let path = nginx.root().join("swap.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert_array("a", &vec![1.0f64; 1 << 18], &[1 << 18])
        .unwrap();
    drop(m);
    let options = RemoteOptions::new().block_size(4096);
    let remote = RemoteDict::open_with(&nginx.url("swap.mmdpickle"), options).unwrap();
    // Another file takes its name (a different length, so another ETag).
    let new_path = nginx.root().join("new.mmdpickle");
    let mut m = MmapDict::open(&new_path).unwrap();
    m.insert_array("a", &vec![2.0f64; 1 << 17], &[1 << 17])
        .unwrap();
    drop(m);
    std::fs::rename(&new_path, &path).unwrap();
    let error = remote.array("a").unwrap_err();
    assert!(error.is_changed(), "{error}");
    println!("{error}");
    assert!(nginx.accesses().iter().any(|access| access.status == 412));
}

// ------------------------------------------------------------------ hostile servers

fn small_file() -> Arc<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("x", 1i64).unwrap();
    m.insert_array("a", &vec![7u8; 20_000], &[100, 200])
        .unwrap();
    drop(m);
    Arc::new(std::fs::read(&path).unwrap())
}

fn impatient() -> RemoteOptions {
    RemoteOptions::new()
        .block_size(4096)
        .retries(1)
        .timeout(Duration::from_millis(1500))
        .connect_timeout(Duration::from_millis(1500))
}

#[test]
fn a_truncated_body_is_an_error() {
    let file = small_file();
    let server = Hostile::start(move |_| Answer::Truncate {
        file: Arc::clone(&file),
        sent: 100,
    });
    let error = RemoteDict::open_with(&server.url("f"), impatient()).unwrap_err();
    println!("{error}");
    assert!(
        matches!(
            error.kind(),
            ErrorKind::Request(_) | ErrorKind::BadResponse { .. }
        ),
        "{error:?}"
    );
}

#[test]
fn a_lying_content_range_is_an_error() {
    let file = small_file();
    let server = Hostile::start(move |_| Answer::LieAboutRange {
        file: Arc::clone(&file),
    });
    let error = RemoteDict::open_with(&server.url("f"), impatient()).unwrap_err();
    println!("{error}");
    assert!(
        matches!(
            error.kind(),
            ErrorKind::Request(_) | ErrorKind::BadResponse { .. }
        ),
        "{error:?}"
    );
}

#[test]
fn a_500_then_a_200_is_retried() {
    let file = small_file();
    let server = Hostile::start(move |request| match request.idx {
        0 | 2 => Answer::Status(500),
        _ => Answer::Serve {
            file: Arc::clone(&file),
            etag: "v1",
        },
    });
    let remote = RemoteDict::open_with(&server.url("f"), impatient()).unwrap();
    assert_eq!(remote.get("x").unwrap(), Value::from(1i64));
    assert_eq!(remote.array("a").unwrap().data, vec![7u8; 20_000]);
    assert!(server.n_requests() >= 4);
}

#[test]
fn a_silent_server_times_out() {
    let server = Hostile::start(|_| Answer::Silence);
    let error = RemoteDict::open_with(&server.url("f"), impatient()).unwrap_err();
    println!("{error}");
    assert!(matches!(error.kind(), ErrorKind::Request(_)), "{error:?}");
}

#[test]
fn an_object_swapped_mid_read_is_a_version_error() {
    let file = small_file();
    let other = {
        let mut other = (*file).clone();
        other.push(0);
        Arc::new(other)
    };
    let server = Hostile::start(move |request| match request.idx {
        0 => Answer::Serve {
            file: Arc::clone(&file),
            etag: "v1",
        },
        _ => Answer::Serve {
            file: Arc::clone(&other),
            etag: "v2",
        },
    });
    let error = RemoteDict::open_with(&server.url("f"), impatient())
        .and_then(|remote| remote.array("a"))
        .unwrap_err();
    println!("{error}");
    assert!(error.is_changed(), "{error:?}");
}

#[test]
fn entries_claiming_2_pow_63_bytes_are_an_error() {
    let mut file = (*small_file()).clone();
    // The first entry's frame length (after the 24-byte header's FRAME opcode).
    file[25..33].copy_from_slice(&(1u64 << 63).to_le_bytes());
    let file = Arc::new(file);
    let server = Hostile::start(move |_| Answer::Serve {
        file: Arc::clone(&file),
        etag: "v1",
    });
    let error = RemoteDict::open_with(&server.url("f"), impatient()).unwrap_err();
    println!("{error}");
    assert!(
        matches!(error.kind(), ErrorKind::RemoteLayout(_)),
        "{error:?}"
    );
    assert_eq!(error.offset(), Some(24));
    assert!(!error.to_string().contains("fsck"), "{error}");
    // The table's start, and the file's end (whether the file was cut short: it was not).
    assert_eq!(server.n_requests(), 2);
}

#[test]
fn the_cache_stays_within_its_budget() {
    let nginx = Nginx::start();
    let path = nginx.root().join("arrays.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    for idx in 0..64 {
        m.insert_array(&format!("a{idx}"), &vec![idx as u8; 10_000], &[10_000])
            .unwrap();
    }
    drop(m);
    let options = RemoteOptions::new().block_size(4096).cache_budget(16384);
    let remote = RemoteDict::open_with(&nginx.url("arrays.mmdpickle"), options).unwrap();
    for idx in 0..64 {
        let key = format!("a{idx}");
        assert_eq!(remote.array(&key).unwrap().data, vec![idx as u8; 10_000]);
        assert!(
            remote.cached_bytes() <= 16384 + 4096,
            "{}",
            remote.cached_bytes()
        );
    }
}

#[test]
fn the_async_dict_reads_inside_a_callers_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mmdpickle");
    let mut m = MmapDict::open(&path).unwrap();
    m.insert("x", "text").unwrap();
    m.insert_array("a", &[1i32, 2, 3, 4, 5, 6], &[3, 2])
        .unwrap();
    drop(m);
    let url = format!("file://{}", path.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let remote = mmappickle_remote::AsyncRemoteDict::open(&url)
            .await
            .unwrap();
        assert_eq!(remote.keys(), ["x", "a"]);
        assert_eq!(remote.value("x").await.unwrap(), "text".into());
        let rows = remote.array_rows("a", 1..3).await.unwrap();
        assert_eq!(rows.to_vec::<i32>().unwrap(), [3, 4, 5, 6]);
        let missing = remote.get("nope").await.unwrap_err();
        assert!(matches!(missing.kind(), ErrorKind::KeyNotFound { .. }));
    });
}

#[test]
fn bad_urls_are_errors() {
    for url in ["ftp://host/file", "not a url", "http://"] {
        let error = RemoteDict::open(url).unwrap_err();
        println!("{error}");
        assert!(
            matches!(error.kind(), ErrorKind::BadUrl { .. }),
            "{url}: {error:?}"
        );
    }
}
