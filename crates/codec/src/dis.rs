//! The disassembler: a listing in the spirit of `pickletools.dis`.

use std::fmt::{self, Write};

use crate::op::{ops, Op, Ops, TextInt};
use crate::{Error, ErrorKind};

/// Payloads longer than this are shown cut, with their length.
const MAX_SHOWN_BYTES: usize = 64;

/// Disassembles a pickle stream in the spirit of `pickletools.dis`: one line
/// per op with its offset, name and argument, indented by the number of open
/// `MARK`s. A bad stream (including one without `STOP`) ends with an
/// `error:` line; it never panics.
///
/// ```
/// let listing = mmappickle_codec::dis(b"\x80\x04K\x05.");
/// assert_eq!(listing, "    0: PROTO 4\n    2: BININT1 5\n    4: STOP\n");
/// ```
pub fn dis(data: &[u8]) -> String {
    let mut listing = String::new();
    let mut saw_stop = false;
    for item in dis_ops(data) {
        match item {
            Ok(op) => {
                saw_stop = op.op == Op::Stop;
                let _ = writeln!(listing, "{:5}: {op}", op.offset);
            }
            Err(error) => {
                let _ = writeln!(listing, "error: {error}");
                return listing;
            }
        }
    }
    if !saw_stop {
        let error = Error::new(ErrorKind::UnexpectedEof { opcode: None }, data.len() as u64);
        let _ = writeln!(listing, "error: {error}");
    }
    listing
}

/// One op of a disassembly: where it is in the input, how long it is with its argument,
/// how many `MARK`s are open around it, and the op.
#[derive(Debug, Clone, PartialEq)]
pub struct DisOp<'a> {
    /// Offset of the opcode in the input.
    pub offset: usize,
    /// Length of the opcode and its argument.
    pub len: usize,
    /// `MARK`s open around the op (a closing op is counted outside its `MARK`).
    pub open_marks: usize,
    /// The op.
    pub op: Op<'a>,
}

impl DisOp<'_> {
    /// The argument as Python's `repr` would show it (long payloads cut), if the op has one.
    pub fn argument(&self) -> Option<String> {
        argument_repr(&self.op)
    }
}

impl fmt::Display for DisOp<'_> {
    /// The op as [`dis`] lists it: indented by its open `MARK`s, name, argument.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.open_marks.min(64) {
            f.write_str("    ")?;
        }
        f.write_str(self.op.name())?;
        match self.argument() {
            Some(argument) => write!(f, " {argument}"),
            None => Ok(()),
        }
    }
}

/// The ops of `data` as [`dis`] lists them, structured: each with its offset, length and
/// depth, stopping after `STOP`, at the end of the input, or after the first error.
///
/// ```
/// let ops: Vec<_> = mmappickle_codec::dis_ops(b"(K\x05l.").collect::<Result<_, _>>()?;
/// assert_eq!(ops[1].offset, 1);
/// assert_eq!(ops[1].len, 2);
/// assert_eq!(ops[1].to_string(), "    BININT1 5");
/// assert_eq!(ops[2].to_string(), "LIST");
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
pub fn dis_ops(data: &[u8]) -> DisOps<'_> {
    DisOps {
        ops: ops(data),
        open_marks: 0,
    }
}

/// The iterator of [`dis_ops`].
#[derive(Debug)]
pub struct DisOps<'a> {
    ops: Ops<'a>,
    open_marks: usize,
}

impl<'a> Iterator for DisOps<'a> {
    type Item = Result<DisOp<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (offset, op) = match self.ops.next()? {
            Ok(pair) => pair,
            Err(error) => return Some(Err(error)),
        };
        if closes_mark(&op) {
            self.open_marks = self.open_marks.saturating_sub(1);
        }
        let open_marks = self.open_marks;
        if op == Op::Mark {
            self.open_marks += 1;
        }
        Some(Ok(DisOp {
            offset,
            len: self.ops.position().saturating_sub(offset),
            open_marks,
            op,
        }))
    }
}

/// Whether `op` consumes the values up to the last `MARK`.
fn closes_mark(op: &Op<'_>) -> bool {
    matches!(
        op,
        Op::Appends
            | Op::List
            | Op::Tuple
            | Op::Dict
            | Op::SetItems
            | Op::AddItems
            | Op::FrozenSet
            | Op::PopMark
            | Op::Inst { .. }
            | Op::Obj
    )
}

/// The argument as Python's `repr` would show it, if the op has one.
fn argument_repr(op: &Op<'_>) -> Option<String> {
    Some(match op {
        Op::Float(value) | Op::BinFloat(value) => format!("{value:?}"),
        Op::Int(TextInt::Bool(flag)) => if *flag { "True" } else { "False" }.to_owned(),
        Op::Int(TextInt::Decimal(text)) | Op::Long(text) => (*text).to_owned(),
        Op::BinInt(value) | Op::Ext4(value) => value.to_string(),
        Op::BinInt1(value) | Op::BinGet(value) | Op::BinPut(value) | Op::Ext1(value) => {
            value.to_string()
        }
        Op::Proto(value) => value.to_string(),
        Op::BinInt2(value) | Op::Ext2(value) => value.to_string(),
        Op::Get(index) | Op::Put(index) => index.to_string(),
        Op::LongBinGet(index) | Op::LongBinPut(index) => index.to_string(),
        Op::Frame(length) => length.to_string(),
        Op::PersId(text) => str_repr(text),
        Op::Unicode(text) => str_repr(text),
        Op::BinUnicode(text) | Op::ShortBinUnicode(text) | Op::BinUnicode8(text) => str_repr(text),
        Op::String(bytes) => bytes_repr(bytes),
        Op::BinString(bytes)
        | Op::ShortBinString(bytes)
        | Op::BinBytes(bytes)
        | Op::ShortBinBytes(bytes)
        | Op::BinBytes8(bytes)
        | Op::ByteArray8(bytes) => bytes_repr(bytes),
        Op::Long1(bytes) | Op::Long4(bytes) => match crate::BigInt::value_from_le_bytes(bytes) {
            crate::Value::Int(value) => value.to_string(),
            crate::Value::BigInt(big) if bytes.len() <= MAX_SHOWN_BYTES => big.to_decimal(),
            _ => format!("<{} bytes>", bytes.len()),
        },
        Op::Global { module, name } | Op::Inst { module, name } => format!("{module} {name}"),
        _ => return None,
    })
}

fn str_repr(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_BYTES) {
        Some((cut, _)) => format!(
            "{:?}... ({} bytes)",
            text.get(..cut).unwrap_or_default(),
            text.len()
        ),
        None => format!("{text:?}"),
    }
}

/// `b'...'` with Python's escapes, cut after [`MAX_SHOWN_BYTES`].
fn bytes_repr(bytes: &[u8]) -> String {
    let shown = bytes.get(..MAX_SHOWN_BYTES).unwrap_or(bytes);
    let mut text = String::from("b'");
    for &byte in shown {
        match byte {
            b'\\' => text.push_str("\\\\"),
            b'\'' => text.push_str("\\'"),
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    text.push('\'');
    if shown.len() < bytes.len() {
        let _ = write!(text, "... ({} bytes)", bytes.len());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_by_mark_depth() {
        // pickle.dumps([1, 2], 2)
        let listing = dis(b"\x80\x02]q\x00(K\x01K\x02e.");
        let expected = [
            "    0: PROTO 2",
            "    2: EMPTY_LIST",
            "    3: BINPUT 0",
            "    5: MARK",
            "    6:     BININT1 1",
            "    8:     BININT1 2",
            "   10: APPENDS",
            "   11: STOP",
        ];
        assert_eq!(listing.lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn bad_stream_ends_with_an_error_line() {
        let listing = dis(b"\x80\x04X\xff\xff\xff\xff");
        assert!(listing.starts_with("    0: PROTO 4\n"));
        let last = listing.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: BINUNICODE declares"), "{last}");
    }

    #[test]
    fn missing_stop_is_reported() {
        assert_eq!(
            dis(b"N"),
            "    0: NONE\nerror: input ends before STOP at byte offset 1\n"
        );
    }

    #[test]
    fn long_payloads_are_cut() {
        let mut data = vec![b'B'];
        data.extend_from_slice(&100u32.to_le_bytes());
        data.extend_from_slice(&[b'x'; 100]);
        data.push(b'.');
        assert!(dis(&data).contains("... (100 bytes)"));
    }
}
