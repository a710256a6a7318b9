//! One function per subcommand; each writes its output to `out`.

mod disasm;
mod edit;
mod inspect;
pub(crate) mod show;
mod transfer;

use std::io::{self, Write};

use mmappickle::ArrayEncoding;
use serde::Serialize;

use crate::error::CliResult;
use crate::{Cli, Command, Encoding};

/// Array data moves in pieces of this many bytes.
pub(crate) const CHUNK: usize = 8 << 20;

/// Runs the command `cli` names.
pub fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    let encoding = match cli.encoding {
        Encoding::Compatible => ArrayEncoding::Compatible,
        Encoding::Portable => ArrayEncoding::Portable,
    };
    match &cli.command {
        Command::Ls { file, all, json } => inspect::ls(file, *all, *json, out),
        Command::Info { file, json } => inspect::info(file, *json, out),
        Command::Get { file, key, json } => inspect::get(file, key, *json, out),
        Command::Dump { file, json } => inspect::dump(file, *json, out),
        Command::Unpickle { file, json } => inspect::unpickle(file, *json, out),
        Command::Dis { file } => disasm::disassemble(file, out),
        Command::Set { file, key, value } => edit::set(file, key, value, encoding),
        Command::Rm { file, keys } => edit::rm(file, keys),
        Command::Stub {
            file,
            key,
            dtype,
            shape,
        } => edit::stub(file, key, dtype, shape, encoding),
        Command::ImportNpy { file, key, npy } => transfer::import_npy(file, key, npy, encoding),
        Command::ExportNpy {
            file,
            key,
            out: npy_path,
            mask,
        } => transfer::export_npy(file, key, npy_path, *mask),
        Command::ImportNpz { file, npz } => transfer::import_npz(file, npz, encoding, out),
        Command::Fsck { file } => edit::fsck(file, out),
        Command::Vacuum { file } => edit::vacuum(file, out),
        Command::Convert { input, output } => {
            edit::convert(input, output.as_deref(), encoding, out)
        }
        Command::Show(args) => show::show(args, out),
    }
}

/// Leaves `tables` (an open dict, a listing) to the operating system, which frees a
/// process's memory at once when the command ends next: releasing a table of many entries
/// one by one is work nobody waits for.
fn free_at_exit<T>(tables: T) {
    std::mem::forget(tables);
}

/// Prints `json` pretty, with a final newline.
fn print_json(out: &mut dyn Write, json: &impl Serialize) -> CliResult {
    // serde_json writes a few bytes at a time: gathered here, not one dynamic call each.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    json.serialize(&mut json_serializer(&mut out))?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A serializer of JSON into `out`, laid out as the commands print it.
fn json_serializer<W: Write>(out: W) -> serde_json::Serializer<W, ShallowPretty> {
    serde_json::Serializer::with_formatter(out, ShallowPretty::new())
}

/// Levels of nesting that [`ShallowPretty`] puts on lines of their own.
const INDENTED_LEVELS: usize = 16;

/// serde_json's pretty layout (two spaces per level) for the first
/// [`INDENTED_LEVELS`] levels and the compact one below: a deeply nested value
/// (a hostile pickle nests a tuple in a tuple a thousand times) would otherwise
/// print as many spaces per element as it is deep, gigabytes from a few bytes.
struct ShallowPretty {
    depth: usize,
    has_value: bool,
}

impl ShallowPretty {
    fn new() -> Self {
        ShallowPretty {
            depth: 0,
            has_value: false,
        }
    }

    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, writer: &mut W, bracket: &[u8]) -> io::Result<()> {
        let level = self.depth;
        self.depth -= 1;
        if self.has_value && level <= INDENTED_LEVELS {
            writer.write_all(b"\n")?;
            self.indent(writer)?;
        }
        writer.write_all(bracket)
    }

    /// Before an array value or an object key.
    fn item<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if self.depth > INDENTED_LEVELS {
            return writer.write_all(if first { b"" } else { b"," });
        }
        writer.write_all(if first { b"\n" } else { b",\n" })?;
        self.indent(writer)
    }

    fn indent<W: ?Sized + Write>(&self, writer: &mut W) -> io::Result<()> {
        for _ in 0..self.depth.min(INDENTED_LEVELS) {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for ShallowPretty {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(writer, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.item(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(if self.depth > INDENTED_LEVELS {
            b":"
        } else {
            b": "
        })
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn printed(json: &Json) -> String {
        let mut out = Vec::new();
        print_json(&mut out, json).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// `depth` arrays, each holding a number, an empty object and the next one.
    fn nested(depth: usize) -> Json {
        (0..depth).fold(json!({"leaf": [1.5, null]}), |inner, level| {
            json!([level, {}, [], inner])
        })
    }

    #[test]
    fn shallow_documents_print_as_serde_json_pretty_prints_them() {
        for json in [
            json!(null),
            json!([]),
            json!({"a": [1, {"b": "c"}], "d": {}}),
            nested(INDENTED_LEVELS - 2),
        ] {
            let expected = serde_json::to_string_pretty(&json).unwrap() + "\n";
            assert_eq!(printed(&json), expected);
        }
    }

    #[test]
    fn deep_documents_stop_indenting_and_keep_their_content() {
        // Deep, within serde_json's parsing limit of 128 levels.
        let deep = nested(120);
        let text = printed(&deep);
        assert_eq!(serde_json::from_str::<Json>(&text).unwrap(), deep);
        let longest_indent = text
            .lines()
            .map(|line| line.len() - line.trim_start().len())
            .max()
            .unwrap();
        assert_eq!(longest_indent, 2 * INDENTED_LEVELS);
        let fully_indented = serde_json::to_string_pretty(&deep).unwrap();
        assert!(
            text.len() * 4 < fully_indented.len(),
            "{} bytes, fully indented {}",
            text.len(),
            fully_indented.len()
        );
    }
}
