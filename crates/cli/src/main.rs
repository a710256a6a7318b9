//! `mmappickle`: look inside mmappickle files and plain pickles without running
//! them, edit them, and move numpy arrays in and out as `.npy`.
//!
//! Exit codes: 0 on success, 1 on an error (one line on stderr, with the byte
//! offset for format errors), 2 on a usage error. See the crate's README for
//! every command and for the JSON mapping of values.

// Architecture invariant: one door. The command depends on the facade and, for URLs, the
// remote crate (its Cargo.toml lists `mmappickle`, `mmappickle-remote` and no layer) and
// uses `MmapDict`, `RemoteDict` and the facade's top-level items, never a layer module.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod arrays;
mod commands;
mod error;
mod json;
mod known_forms;
mod npy;
mod picture;
mod pretty;
mod progress;
mod scalars;
mod store;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::CliError;

/// Look inside mmappickle files and plain pickles without running them.
#[derive(Debug, Parser)]
#[command(name = "mmappickle", version, about, propagate_version = true)]
struct Cli {
    /// How arrays are written: `compatible` (what Python mmappickle 1.0 writes)
    /// or `portable` (loads with plain `pickle.load` on numpy 1.x and 2.x).
    #[arg(long, global = true, value_enum, default_value_t = Encoding::Compatible)]
    encoding: Encoding,

    #[command(subcommand)]
    command: Command,
}

/// The array encoding chosen with `--encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Encoding {
    /// `reshape(fromstring(raw, dtype), shape)`, byte-identical to Python mmappickle.
    Compatible,
    /// numpy's own `_reconstruct` form, raw bytes still one mappable block.
    Portable,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the entries: key, kind, dtype, shape, bytes, data offset, alignment.
    Ls {
        /// The mmappickle file.
        file: PathBuf,
        /// Include deleted and padding entries.
        #[arg(long)]
        all: bool,
        /// Print a JSON array of entries instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Format version, commit number, entries, reclaimable bytes, file size.
    Info {
        /// The mmappickle file.
        file: PathBuf,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print one value, Python-like (arrays summarised), or as JSON.
    Get {
        /// The mmappickle file.
        file: PathBuf,
        /// The key.
        key: String,
        /// Print the value in the JSON mapping.
        #[arg(long)]
        json: bool,
    },
    /// Print the whole dict: key -> value.
    Dump {
        /// The mmappickle file.
        file: PathBuf,
        /// Print one JSON object (key -> value in the JSON mapping).
        #[arg(long)]
        json: bool,
    },
    /// Read any plain pickle (protocols 0 to 5) safely: nothing is imported or run.
    Unpickle {
        /// The pickle file.
        file: PathBuf,
        /// Print the value in the JSON mapping.
        #[arg(long)]
        json: bool,
    },
    /// Annotated disassembly: entries, keys, live flags, then each value's opcodes.
    Dis {
        /// An mmappickle file, or any plain pickle.
        file: PathBuf,
    },
    /// Store a value given in the JSON mapping (`-` reads it from stdin).
    Set {
        /// The mmappickle file (created if missing).
        file: PathBuf,
        /// The key.
        key: String,
        /// The value, as JSON (negative numbers too: `--json -7`).
        #[arg(long = "json", value_name = "VALUE", allow_hyphen_values = true)]
        value: String,
    },
    /// Delete keys, all in one batch: if one is missing, none is deleted.
    Rm {
        /// The mmappickle file.
        file: PathBuf,
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Allocate an array on disk without writing its data (it reads as zeros).
    Stub {
        /// The mmappickle file (created if missing).
        file: PathBuf,
        /// The key.
        key: String,
        /// The dtype, as numpy names it: `float64`, `int32`, `>i4`, `<U5`...
        #[arg(long, default_value = "float64")]
        dtype: String,
        /// The shape, comma-separated: `300,300,300` (`--shape` alone for a 0-d array).
        #[arg(long, required = true, value_delimiter = ',', num_args = 0..)]
        shape: Vec<u64>,
    },
    /// Store a `.npy` file (versions 1 to 3) as a memory-mappable array.
    ImportNpy {
        /// The mmappickle file (created if missing).
        file: PathBuf,
        /// The key.
        key: String,
        /// The `.npy` file.
        npy: PathBuf,
    },
    /// Write an array entry to a `.npy` file.
    ExportNpy {
        /// The mmappickle file.
        file: PathBuf,
        /// The key.
        key: String,
        /// The `.npy` file to write.
        out: PathBuf,
        /// For a masked array, write its mask instead of its data.
        #[arg(long)]
        mask: bool,
    },
    /// Store every `.npy` member of an `.npz` archive, keyed by member name.
    ImportNpz {
        /// The mmappickle file (created if missing).
        file: PathBuf,
        /// The `.npz` archive.
        npz: PathBuf,
    },
    /// Check the file; cut a torn last entry and write a fresh terminator.
    Fsck {
        /// The mmappickle file.
        file: PathBuf,
    },
    /// Remove deleted entries and give their space back.
    Vacuum {
        /// The mmappickle file.
        file: PathBuf,
    },
    /// Convert a plain pickle of a dict into an mmappickle file.
    Convert {
        /// The plain pickle.
        input: PathBuf,
        /// Where to write the result; converts in place when absent.
        output: Option<PathBuf>,
    },
    /// Draw an array: a PNG (--out), or 24-bit colour in the terminal; 1-D as a line.
    Show(commands::show::ShowArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = commands::run(&cli, &mut out).and_then(|()| out.flush().map_err(CliError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`mmappickle dump f | head`) is not a failure.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mmappickle: error: {err}");
            ExitCode::FAILURE
        }
    }
}
