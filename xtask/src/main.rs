//! `cargo xtask`: the project's development tasks (`cargo xtask help` lists them).
//!
//! One module per subcommand; a new one is a module plus a line in [`COMMANDS`].
//! Few dependencies on purpose: arguments are parsed by hand.

mod bench;
mod docs;
mod fixtures;
mod fuzz;
mod peers;
mod power_loss;
mod pypackage;
mod stress;
mod test;
mod tidy;
mod venv;
mod wheel;

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A task's outcome: the error says what failed, for the user.
type Result<T = ()> = std::result::Result<T, String>;

/// A subcommand: its name, its usage line, and what runs it.
struct Subcommand {
    name: &'static str,
    usage: &'static str,
    run: fn(&[String]) -> Result,
}

const COMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "bench",
        usage: bench::USAGE,
        run: bench::main,
    },
    Subcommand {
        name: "peers",
        usage: peers::USAGE,
        run: peers::main,
    },
    Subcommand {
        name: "venv",
        usage: "venv                create or reuse the Python environments under target/, print their interpreters",
        run: venv::main,
    },
    Subcommand {
        name: "fixtures",
        usage: "fixtures [--check]  regenerate tests/fixtures/ with the Python library (--check: fail if they drifted)",
        run: fixtures::main,
    },
    Subcommand {
        name: "fuzz",
        usage: "fuzz --smoke | --target NAME --time SECONDS | --minutes N [--target NAME]... | --seed-corpus   cargo-fuzz targets of fuzz/ (see xtask/src/fuzz.rs)",
        run: fuzz::main,
    },
    Subcommand {
        name: "stress",
        usage: "stress [--kills N] [--seed S] [--python-keys K]   long reliability runs: N SIGKILLs (1000), 4+4 concurrent writers (RELIABILITY.md)",
        run: stress::main,
    },
    Subcommand {
        name: "tidy",
        usage: tidy::USAGE,
        run: tidy::main,
    },
    Subcommand {
        name: "wheel",
        usage: wheel::USAGE,
        run: wheel::main,
    },
    Subcommand {
        name: "docs",
        usage: docs::USAGE,
        run: docs::main,
    },
    Subcommand {
        name: "test",
        usage: "test [--python]     THE test command: tidy, fmt, clippy, fixtures --check, cargo test --workspace with Python, the Python package's pytest, its docs' examples (--python: those two steps alone)",
        run: test::main,
    },
];

fn usage() -> String {
    let mut text = String::from("usage: cargo xtask <subcommand>\n\nsubcommands:\n");
    for command in COMMANDS {
        text.push_str("  ");
        text.push_str(command.usage);
        text.push('\n');
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        eprint!("{}", usage());
        return ExitCode::FAILURE;
    };
    if matches!(name.as_str(), "help" | "-h" | "--help") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        eprint!("unknown subcommand {name:?}\n\n{}", usage());
        return ExitCode::FAILURE;
    };
    match (command.run)(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask {name}: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo that runs us (so that `cargo +toolchain xtask` stays on that toolchain).
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Checks that `args` holds only flags among `known`; returns those given.
fn parse_flags<'a>(args: &'a [String], known: &[&str]) -> Result<Vec<&'a str>> {
    args.iter()
        .map(|arg| {
            if known.contains(&arg.as_str()) {
                Ok(arg.as_str())
            } else {
                Err(format!("unexpected argument {arg:?} (expected: {known:?})"))
            }
        })
        .collect()
}

thread_local! {
    /// The log of the background step this thread runs ([`spawn_step`]): its lines and its
    /// commands' output go there, printed whole when the step is joined.
    static STEP_LOG: std::cell::RefCell<Option<File>> = const { std::cell::RefCell::new(None) };
}

/// Prints a line of the current step (to its log when it runs in the background).
fn say(line: impl std::fmt::Display) {
    STEP_LOG.with_borrow_mut(|log| match log {
        Some(log) => drop(writeln!(log, "{line}")),
        None => println!("{line}"),
    });
}

/// Runs `command` in the workspace root, echoing it; fails when it exits non-zero.
fn run(command: &mut Command) -> Result {
    command.current_dir(workspace_root());
    say(format!("$ {}", describe(command)));
    STEP_LOG.with_borrow(|log| -> Result {
        if let Some(log) = log {
            let output = || {
                log.try_clone()
                    .map_err(|e| format!("cannot share a log: {e}"))
            };
            command.stdout(output()?).stderr(output()?);
        }
        Ok(())
    })?;
    let status = command
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(command)))
    }
}

/// Runs `command` quietly; whether it exited zero.
fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// Runs one named step, printing its start, its end and its duration.
fn step<T>(name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("\n==> {name}");
    let start = Instant::now();
    let outcome = body();
    let seconds = start.elapsed().as_secs_f64();
    match &outcome {
        Ok(_) => println!("<== {name}: ok ({seconds:.1} s)"),
        Err(_) => println!("<== {name}: FAILED ({seconds:.1} s)"),
    }
    outcome.map_err(|e| format!("{name}: {e}"))
}

/// A step running in a thread of its own (network- or disk-bound work, such as pip's, beside
/// the builds): [`Background::join`] waits for it and prints its log and outcome.
struct Background<T> {
    name: String,
    thread: JoinHandle<(Result<T>, Duration, Option<File>)>,
}

/// Starts the step `name` in the background; its output is held back until it is joined.
fn spawn_step<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> Result<T> + Send + 'static,
) -> Background<T> {
    println!("\n--> {name}: started in the background");
    let thread = std::thread::spawn(move || {
        // An anonymous file (no name to clash or to clean up), read back at the join.
        let log = tempfile_in_target();
        STEP_LOG.set(log.as_ref().ok().and_then(|log| log.try_clone().ok()));
        let start = Instant::now();
        let outcome = log.as_ref().map_err(Clone::clone).and_then(|_| body());
        (outcome, start.elapsed(), log.ok())
    });
    Background {
        name: name.to_owned(),
        thread,
    }
}

/// A new empty log file under `target/xtask`, unlinked at once.
fn tempfile_in_target() -> Result<File> {
    let dir = workspace_root().join("target").join("xtask");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("step-{:?}.log", std::thread::current().id()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

impl<T> Background<T> {
    /// Waits for the step, prints its log, its outcome and duration, and returns its result.
    fn join(self) -> Result<T> {
        let name = self.name;
        println!("\n==> {name} (ran in the background)");
        let waited = Instant::now();
        let (outcome, took, log) = self
            .thread
            .join()
            .unwrap_or_else(|_| (Err("panicked".to_owned()), Duration::ZERO, None));
        if let Some(mut log) = log {
            let _ = log.rewind();
            let _ = std::io::copy(&mut log, &mut std::io::stdout());
        }
        let waited = waited.elapsed().as_secs_f64();
        let took = took.as_secs_f64();
        match &outcome {
            Ok(_) => println!("<== {name}: ok ({took:.1} s; waited for {waited:.1} s)"),
            Err(_) => println!("<== {name}: FAILED ({took:.1} s; waited for {waited:.1} s)"),
        }
        outcome.map_err(|e| format!("{name}: {e}"))
    }
}
