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

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

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

/// Runs `command` in the workspace root, echoing it; fails when it exits non-zero.
fn run(command: &mut Command) -> Result {
    command.current_dir(workspace_root());
    println!("$ {}", describe(command));
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
