//! The read commands on URLs (nginx on loopback, `file://`): what they print locally.

use std::path::Path;

use crate::{fails, fixture, json_of, mmappickle, ok, remote_support, workspace_root};

/// The binary's exit code, stdout and stderr for `args` with `file` last but one (or last).
fn run_on(args: &[&str], file: &str, dir: &Path) -> (Option<i32>, String, String) {
    let mut full: Vec<&str> = vec![args[0], file];
    full.extend_from_slice(&args[1..]);
    let output = mmappickle(&full, dir);
    (
        output.status.code(),
        String::from_utf8(output.stdout).expect("UTF-8 output"),
        String::from_utf8(output.stderr).expect("UTF-8 errors"),
    )
}

#[test]
fn read_commands_on_urls_print_what_they_print_locally() {
    let nginx = remote_support::Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = std::fs::read_dir(workspace_root().join("tests/fixtures"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".mmdpickle"))
        .collect();
    assert!(names.len() >= 10);
    for name in &names {
        let local = fixture(name);
        std::fs::copy(&local, nginx.root().join(name)).unwrap();
        let local = local.to_str().unwrap();
        let keys = json_of(&ok(&["ls", "--all", "--json", local], dir.path()));
        let mut commands: Vec<Vec<&str>> = vec![
            vec!["ls"],
            vec!["ls", "--all"],
            vec!["ls", "--all", "--json"],
            vec!["info"],
            vec!["info", "--json"],
            vec!["dump"],
            vec!["dump", "--json"],
            vec!["dis"],
            vec!["get", "no such key"],
        ];
        for row in keys.as_array().unwrap() {
            let key = row["key"].as_str().unwrap();
            commands.push(vec!["get", key]);
            commands.push(vec!["get", key, "--json"]);
        }
        // `file://` takes the same path past the store (the remote crate reads every
        // fixture through it): one fixture is enough here.
        let mut urls = vec![nginx.url(name)];
        if name == "masked.mmdpickle" {
            urls.push(format!("file://{local}"));
        }
        for url in urls {
            for command in &commands {
                let (code, stdout, stderr) = run_on(command, local, dir.path());
                let remote = run_on(command, &url, dir.path());
                // The file is named as it was given.
                let expected = (
                    code,
                    stdout.replace(local, &url),
                    stderr.replace(local, &url),
                );
                assert_eq!(remote, expected, "{command:?} {url}");
            }
        }
        for row in keys.as_array().unwrap() {
            let key = row["key"].as_str().unwrap();
            for mask in [&[][..], &["--mask"]] {
                let npy = |file: &str, out: &str| {
                    let args = [&["export-npy", file, key, out][..], mask].concat();
                    let output = mmappickle(&args, dir.path());
                    (
                        output.status.code(),
                        std::fs::read(dir.path().join(out)).ok(),
                    )
                };
                let url = nginx.url(name);
                assert_eq!(
                    npy(&url, "remote.npy"),
                    npy(local, "local.npy"),
                    "{name} {key}"
                );
                let _ = std::fs::remove_file(dir.path().join("remote.npy"));
                let _ = std::fs::remove_file(dir.path().join("local.npy"));
            }
        }
    }
}

#[test]
fn ls_over_http_reads_the_table_not_the_arrays() {
    let nginx = remote_support::Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let path = nginx.root().join("big.mmdpickle");
    let path_text = path.to_str().unwrap();
    ok(&["set", path_text, "before", "--json", "1"], dir.path());
    ok(
        &[
            "stub",
            path_text,
            "big",
            "--dtype",
            "float64",
            "--shape",
            "4096,2048",
        ],
        dir.path(),
    );
    ok(&["set", path_text, "after", "--json", "2"], dir.path());
    let url = nginx.url("big.mmdpickle");
    let listed = ok(&["ls", &url], dir.path());
    assert_eq!(listed, ok(&["ls", path_text], dir.path()));
    let received: u64 = nginx.accesses().iter().map(|access| access.bytes).sum();
    // 64 MiB of array, a block or two of table.
    assert!(received <= 2 << 20, "{received} bytes for ls");
    assert_eq!(ok(&["get", &url, "after"], dir.path()), "2\n");
    let unreachable = "http://127.0.0.1:9/none.mmdpickle";
    let error = fails(&["ls", unreachable], dir.path(), 1);
    assert!(error.contains(unreachable), "{error}");
    let error = fails(&["ls", "s3a://"], dir.path(), 1);
    assert!(error.contains("cannot open"), "{error}");
}
