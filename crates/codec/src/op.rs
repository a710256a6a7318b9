//! Pickle opcodes: the [`Op`] enum, a nom parser that decodes one op at a
//! time ([`parse_op`], [`ops`]) and the encoder that writes one back ([`encode_op`]).
//!
//! Arguments borrow from the input; only protocol 0's escaped text
//! (`STRING`, `UNICODE`) may need an owned copy, hence the `Cow`s.

use std::borrow::Cow;

use nom::bytes::complete::take_until;

use crate::opcode::{
    bare_op, name, spec, ArgForm, BINBYTES, BINBYTES8, BINFLOAT, BINGET, BININT, BININT1, BININT2,
    BINPUT, BINSTRING, BINUNICODE, BINUNICODE8, BYTEARRAY8, EXT1, EXT2, EXT4, FLOAT, FRAME, GET,
    GLOBAL, INST, INT, LONG, LONG1, LONG4, LONG_BINGET, LONG_BINPUT, PERSID, PROTO, PUT,
    SHORT_BINBYTES, SHORT_BINSTRING, SHORT_BINUNICODE, STRING, UNICODE,
};
use crate::{Error, ErrorKind};

/// The argument of protocol 0's `INT` opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextInt<'a> {
    /// `I00` (False) or `I01` (True): how protocol 0 writes bools.
    Bool(bool),
    /// Any other value: its decimal digits, with an optional sign.
    Decimal(&'a str),
}

/// One pickle opcode with its decoded argument (names follow `pickletools`).
#[derive(Debug, Clone, PartialEq)]
pub enum Op<'a> {
    /// `MARK`: pushes a mark.
    Mark,
    /// `STOP`: ends the pickle.
    Stop,
    /// `POP`: drops the top value (or the top mark).
    Pop,
    /// `POP_MARK`: drops everything down to the last mark.
    PopMark,
    /// `DUP`: duplicates the top value.
    Dup,
    /// `FLOAT`: a float as text.
    Float(f64),
    /// `INT`: an int (or bool) as text.
    Int(TextInt<'a>),
    /// `BININT`: a signed 4-byte int.
    BinInt(i32),
    /// `BININT1`: an unsigned 1-byte int.
    BinInt1(u8),
    /// `LONG`: an int as decimal text (the trailing `L` is not included).
    Long(&'a str),
    /// `BININT2`: an unsigned 2-byte int.
    BinInt2(u16),
    /// `NONE`.
    None,
    /// `PERSID`: a persistent id as text.
    PersId(&'a str),
    /// `BINPERSID`: a persistent id from the stack.
    BinPersId,
    /// `REDUCE`: `callable(*args)`.
    Reduce,
    /// `STRING`: a quoted, escaped byte string (Python 2 `str`), decoded.
    String(Cow<'a, [u8]>),
    /// `BINSTRING`: a byte string with a 4-byte length.
    BinString(&'a [u8]),
    /// `SHORT_BINSTRING`: a byte string with a 1-byte length.
    ShortBinString(&'a [u8]),
    /// `UNICODE`: a `raw-unicode-escape` text line, decoded.
    Unicode(Cow<'a, str>),
    /// `BINUNICODE`: UTF-8 text with a 4-byte length.
    BinUnicode(&'a str),
    /// `APPEND`.
    Append,
    /// `BUILD`.
    Build,
    /// `GLOBAL`: `module\nname\n`.
    Global {
        /// The module.
        module: &'a str,
        /// The attribute.
        name: &'a str,
    },
    /// `DICT`.
    Dict,
    /// `EMPTY_DICT`.
    EmptyDict,
    /// `APPENDS`.
    Appends,
    /// `GET`: a memo index as text.
    Get(u64),
    /// `BINGET`: a 1-byte memo index.
    BinGet(u8),
    /// `INST`: `module\nname\n`, arguments up to the mark.
    Inst {
        /// The module.
        module: &'a str,
        /// The class.
        name: &'a str,
    },
    /// `LONG_BINGET`: a 4-byte memo index.
    LongBinGet(u32),
    /// `LIST`.
    List,
    /// `EMPTY_LIST`.
    EmptyList,
    /// `OBJ`.
    Obj,
    /// `PUT`: a memo index as text.
    Put(u64),
    /// `BINPUT`: a 1-byte memo index.
    BinPut(u8),
    /// `LONG_BINPUT`: a 4-byte memo index.
    LongBinPut(u32),
    /// `SETITEM`.
    SetItem,
    /// `TUPLE`.
    Tuple,
    /// `EMPTY_TUPLE`.
    EmptyTuple,
    /// `SETITEMS`.
    SetItems,
    /// `BINFLOAT`: a big-endian 8-byte float.
    BinFloat(f64),
    /// `PROTO`: the protocol version.
    Proto(u8),
    /// `NEWOBJ`.
    NewObj,
    /// `EXT1`: a 1-byte extension code.
    Ext1(u8),
    /// `EXT2`: a 2-byte extension code.
    Ext2(u16),
    /// `EXT4`: a 4-byte extension code.
    Ext4(i32),
    /// `TUPLE1`.
    Tuple1,
    /// `TUPLE2`.
    Tuple2,
    /// `TUPLE3`.
    Tuple3,
    /// `NEWTRUE`.
    NewTrue,
    /// `NEWFALSE`.
    NewFalse,
    /// `LONG1`: little-endian two's complement bytes, 1-byte length.
    Long1(&'a [u8]),
    /// `LONG4`: little-endian two's complement bytes, 4-byte length.
    Long4(&'a [u8]),
    /// `BINBYTES`: bytes with a 4-byte length.
    BinBytes(&'a [u8]),
    /// `SHORT_BINBYTES`: bytes with a 1-byte length.
    ShortBinBytes(&'a [u8]),
    /// `SHORT_BINUNICODE`: UTF-8 text with a 1-byte length.
    ShortBinUnicode(&'a str),
    /// `BINUNICODE8`: UTF-8 text with an 8-byte length.
    BinUnicode8(&'a str),
    /// `BINBYTES8`: bytes with an 8-byte length.
    BinBytes8(&'a [u8]),
    /// `EMPTY_SET`.
    EmptySet,
    /// `ADDITEMS`.
    AddItems,
    /// `FROZENSET`.
    FrozenSet,
    /// `NEWOBJ_EX`.
    NewObjEx,
    /// `STACK_GLOBAL`.
    StackGlobal,
    /// `MEMOIZE`.
    Memoize,
    /// `FRAME`: the length of the frame that follows.
    Frame(u64),
    /// `BYTEARRAY8`: a bytearray with an 8-byte length.
    ByteArray8(&'a [u8]),
    /// `NEXT_BUFFER`.
    NextBuffer,
    /// `READONLY_BUFFER`.
    ReadonlyBuffer,
}

/// The `pickletools` name of opcode byte `code`, if it is one.
pub fn opcode_name(code: u8) -> Option<&'static str> {
    spec(code).map(|spec| spec.name)
}

impl Op<'_> {
    /// The `pickletools` name, e.g. `"SHORT_BINUNICODE"`.
    pub fn name(&self) -> &'static str {
        name(self.code())
    }
}

/// An argument as its [`ArgForm`] lays it out, before its op gives it a meaning.
enum Arg<'a> {
    Nothing,
    /// A fixed-width value, a counted payload or a line of any bytes.
    Bytes(&'a [u8]),
    /// An ASCII line.
    Text(&'a str),
    /// Two UTF-8 lines.
    TwoTexts(&'a str, &'a str),
}

type NomError<'a> = nom::error::Error<&'a [u8]>;

/// Reads the arguments of one opcode; every error is reported at the op's start.
struct ArgReader<'a> {
    rest: &'a [u8],
    name: &'static str,
}

impl<'a> ArgReader<'a> {
    fn eof(&self) -> Error {
        Error::new(
            ErrorKind::UnexpectedEof {
                opcode: Some(self.name),
            },
            0,
        )
    }

    fn bad(&self, expected: &'static str) -> Error {
        Error::new(
            ErrorKind::BadArgument {
                opcode: self.name,
                expected,
            },
            0,
        )
    }

    /// Runs a nom parser on the remaining input; its only failure is running out of input.
    #[inline]
    fn nom<T>(
        &mut self,
        mut parser: impl FnMut(&'a [u8]) -> nom::IResult<&'a [u8], T, NomError<'a>>,
    ) -> Result<T, Error> {
        match parser(self.rest) {
            Ok((rest, value)) => {
                self.rest = rest;
                Ok(value)
            }
            Err(_) => Err(self.eof()),
        }
    }

    /// The next `count` bytes.
    #[inline]
    fn take(&mut self, count: usize) -> Result<&'a [u8], Error> {
        let (taken, rest) = self
            .rest
            .split_at_checked(count)
            .ok_or_else(|| self.eof())?;
        self.rest = rest;
        Ok(taken)
    }

    /// The argument as `form` lays it out.
    #[inline]
    fn read(&mut self, form: ArgForm) -> Result<Arg<'a>, Error> {
        Ok(match form {
            ArgForm::Nothing => Arg::Nothing,
            ArgForm::Fixed(width) => Arg::Bytes(self.take(width)?),
            ArgForm::Counted(width) => {
                let length = self.length(width, false)?;
                Arg::Bytes(self.bytes(length)?)
            }
            ArgForm::SignedCounted(width) => {
                let length = self.length(width, true)?;
                Arg::Bytes(self.bytes(length)?)
            }
            ArgForm::AsciiLine => Arg::Text(self.ascii_line()?),
            ArgForm::Line => Arg::Bytes(self.line()?),
            ArgForm::TwoLines => {
                // Each line is checked as it is read, so a bad first line is reported as such.
                let module = self.line()?;
                let module = self.utf8(module)?;
                let name = self.line()?;
                Arg::TwoTexts(module, self.utf8(name)?)
            }
        })
    }

    /// A little-endian length of `width` bytes; `signed`: a two's complement one,
    /// which must not be negative.
    fn length(&mut self, width: usize, signed: bool) -> Result<u64, Error> {
        let bytes = self.take(width)?;
        // The top bit of the last byte is the sign.
        if signed && bytes.last().is_some_and(|&top| top >> 7 == 1) {
            return Err(self.bad("a non-negative length"));
        }
        Ok(bytes
            .iter()
            .rev()
            .fold(0, |length, &byte| length << 8 | u64::from(byte)))
    }

    /// A fixed-width argument as the array its type decodes.
    fn array<const N: usize>(&self, bytes: &[u8]) -> Result<[u8; N], Error> {
        bytes.try_into().map_err(|_| self.eof())
    }

    /// `length` bytes, checked against the input before anything is sliced.
    fn bytes(&mut self, length: u64) -> Result<&'a [u8], Error> {
        match usize::try_from(length) {
            Ok(count) if count <= self.rest.len() => self.take(count),
            _ => Err(Error::new(
                ErrorKind::LengthTooLarge {
                    opcode: self.name,
                    length,
                    available: self.rest.len(),
                },
                0,
            )),
        }
    }

    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, Error> {
        std::str::from_utf8(bytes).map_err(|_| self.bad("UTF-8 text"))
    }

    /// One text line without its `\n`.
    fn line(&mut self) -> Result<&'a [u8], Error> {
        let line = self.nom(take_until(&b"\n"[..]))?;
        self.take(1)?;
        Ok(line)
    }

    /// One text line that must be ASCII.
    fn ascii_line(&mut self) -> Result<&'a str, Error> {
        let line = self.line()?;
        if !line.is_ascii() {
            return Err(self.bad("an ASCII line"));
        }
        self.utf8(line)
    }

    /// A memo index as decimal text.
    fn decimal_index(&self, line: &str) -> Result<u64, Error> {
        let digits = line.trim_ascii();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad("a non-negative decimal memo index"));
        }
        digits
            .parse()
            .map_err(|_| self.bad("a non-negative decimal memo index"))
    }

    /// Signed decimal digits (what Python's `int()` reads from protocol 0).
    fn decimal(&self, text: &'a str) -> Result<&'a str, Error> {
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.bad("decimal digits"));
        }
        Ok(text)
    }
}

/// Decodes the opcode at the start of `input`: the op and the number of bytes it used.
///
/// Error offsets are relative to `input` (an error inside an op is reported at
/// the op's first byte). Declared lengths are checked against the input before
/// anything is sliced, so a huge length is an error, never an allocation.
pub fn parse_op(input: &[u8]) -> Result<(Op<'_>, usize), Error> {
    let Some((&code, args)) = input.split_first() else {
        return Err(Error::new(ErrorKind::UnexpectedEof { opcode: None }, 0));
    };
    let unknown = || Error::new(ErrorKind::UnknownOpcode(code), 0);
    let spec = spec(code).ok_or_else(unknown)?;
    let mut reader = ArgReader {
        rest: args,
        name: spec.name,
    };
    let r = &mut reader;
    let op = match (code, r.read(spec.arg)?) {
        (_, Arg::Nothing) => bare_op(code).ok_or_else(unknown)?,
        (FLOAT, Arg::Text(text)) => Op::Float(
            text.trim_ascii()
                .parse()
                .map_err(|_| r.bad("a float as text"))?,
        ),
        (INT, Arg::Text(text)) => match text {
            "00" => Op::Int(TextInt::Bool(false)),
            "01" => Op::Int(TextInt::Bool(true)),
            _ => Op::Int(TextInt::Decimal(r.decimal(text)?)),
        },
        (LONG, Arg::Text(text)) => Op::Long(r.decimal(text.strip_suffix('L').unwrap_or(text))?),
        (PERSID, Arg::Text(text)) => Op::PersId(text),
        (GET, Arg::Text(text)) => Op::Get(r.decimal_index(text)?),
        (PUT, Arg::Text(text)) => Op::Put(r.decimal_index(text)?),
        (STRING, Arg::Bytes(line)) => {
            let quoted = match (line.first(), line.last()) {
                (Some(&first), Some(&last))
                    if line.len() >= 2 && first == last && (first == b'\'' || first == b'"') =>
                {
                    line.get(1..line.len() - 1).unwrap_or_default()
                }
                _ => return Err(r.bad("a quoted string")),
            };
            Op::String(escape_decode(quoted).ok_or_else(|| r.bad("valid escapes"))?)
        }
        (UNICODE, Arg::Bytes(line)) => Op::Unicode(
            raw_unicode_escape_decode(line).ok_or_else(|| r.bad("raw-unicode-escape text"))?,
        ),
        (GLOBAL, Arg::TwoTexts(module, name)) => Op::Global { module, name },
        (INST, Arg::TwoTexts(module, name)) => Op::Inst { module, name },
        (BININT, Arg::Bytes(bytes)) => Op::BinInt(i32::from_le_bytes(r.array(bytes)?)),
        (BININT1, Arg::Bytes(bytes)) => Op::BinInt1(u8::from_le_bytes(r.array(bytes)?)),
        (BININT2, Arg::Bytes(bytes)) => Op::BinInt2(u16::from_le_bytes(r.array(bytes)?)),
        (BINFLOAT, Arg::Bytes(bytes)) => Op::BinFloat(f64::from_be_bytes(r.array(bytes)?)),
        (BINGET, Arg::Bytes(bytes)) => Op::BinGet(u8::from_le_bytes(r.array(bytes)?)),
        (LONG_BINGET, Arg::Bytes(bytes)) => Op::LongBinGet(u32::from_le_bytes(r.array(bytes)?)),
        (BINPUT, Arg::Bytes(bytes)) => Op::BinPut(u8::from_le_bytes(r.array(bytes)?)),
        (LONG_BINPUT, Arg::Bytes(bytes)) => Op::LongBinPut(u32::from_le_bytes(r.array(bytes)?)),
        (EXT1, Arg::Bytes(bytes)) => Op::Ext1(u8::from_le_bytes(r.array(bytes)?)),
        (EXT2, Arg::Bytes(bytes)) => Op::Ext2(u16::from_le_bytes(r.array(bytes)?)),
        (EXT4, Arg::Bytes(bytes)) => Op::Ext4(i32::from_le_bytes(r.array(bytes)?)),
        (PROTO, Arg::Bytes(bytes)) => Op::Proto(u8::from_le_bytes(r.array(bytes)?)),
        (FRAME, Arg::Bytes(bytes)) => Op::Frame(u64::from_le_bytes(r.array(bytes)?)),
        (BINSTRING, Arg::Bytes(bytes)) => Op::BinString(bytes),
        (SHORT_BINSTRING, Arg::Bytes(bytes)) => Op::ShortBinString(bytes),
        (LONG1, Arg::Bytes(bytes)) => Op::Long1(bytes),
        (LONG4, Arg::Bytes(bytes)) => Op::Long4(bytes),
        (BINBYTES, Arg::Bytes(bytes)) => Op::BinBytes(bytes),
        (SHORT_BINBYTES, Arg::Bytes(bytes)) => Op::ShortBinBytes(bytes),
        (BINBYTES8, Arg::Bytes(bytes)) => Op::BinBytes8(bytes),
        (BYTEARRAY8, Arg::Bytes(bytes)) => Op::ByteArray8(bytes),
        (BINUNICODE, Arg::Bytes(bytes)) => Op::BinUnicode(r.utf8(bytes)?),
        (SHORT_BINUNICODE, Arg::Bytes(bytes)) => Op::ShortBinUnicode(r.utf8(bytes)?),
        (BINUNICODE8, Arg::Bytes(bytes)) => Op::BinUnicode8(r.utf8(bytes)?),
        // An op whose table form this match does not decode (the round-trip tests catch it).
        _ => return Err(unknown()),
    };
    let used = input.len() - reader.rest.len();
    Ok((op, used))
}

/// Decodes Python's `codecs.escape_decode` (the body of a protocol 0 `STRING`).
/// `None` on a bad `\x` escape or a trailing backslash, as Python refuses them.
fn escape_decode(text: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !text.contains(&b'\\') {
        return Some(Cow::Borrowed(text));
    }
    let mut out = Vec::with_capacity(text.len());
    let mut pos = 0;
    while let Some(&byte) = text.get(pos) {
        pos += 1;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let escaped = *text.get(pos)?;
        pos += 1;
        match escaped {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(escaped),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(escaped - b'0');
                for _ in 0..2 {
                    match text.get(pos) {
                        Some(&digit @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(digit - b'0');
                            pos += 1;
                        }
                        _ => break,
                    }
                }
                // Python keeps the low byte of an out-of-range octal escape.
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let high = hex_digit(*text.get(pos)?)?;
                let low = hex_digit(*text.get(pos + 1)?)?;
                pos += 2;
                out.push(high << 4 | low);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(Cow::Owned(out))
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Decodes Python's `raw-unicode-escape`: bytes are Latin-1 code points, and
/// only `\uXXXX` / `\UXXXXXXXX` are escapes. `None` on a truncated escape or
/// a code point that is not a Unicode scalar value (Rust strings cannot hold
/// lone surrogates).
fn raw_unicode_escape_decode(line: &[u8]) -> Option<Cow<'_, str>> {
    if line.is_ascii() && !line.contains(&b'\\') {
        return std::str::from_utf8(line).ok().map(Cow::Borrowed);
    }
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    while let Some(&byte) = line.get(pos) {
        pos += 1;
        let digits = match (byte, line.get(pos)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (b'\\', Some(&other)) => {
                // A backslash pair (or `\x` for any other x) is kept as is.
                out.push('\\');
                out.push(char::from(other));
                pos += 1;
                continue;
            }
            _ => {
                out.push(char::from(byte));
                continue;
            }
        };
        pos += 1;
        let hex = line.get(pos..pos + digits)?;
        pos += digits;
        let mut code_point: u32 = 0;
        for &digit in hex {
            code_point = code_point * 16 + u32::from(hex_digit(digit)?);
        }
        out.push(char::from_u32(code_point)?);
    }
    Some(Cow::Owned(out))
}

/// Appends the encoding of `op` to `out`. [`parse_op`] of the result gives `op` back.
pub fn encode_op(op: &Op<'_>, out: &mut Vec<u8>) {
    let code = op.code();
    out.push(code);
    match op {
        Op::Float(value) => {
            let text = if value.is_nan() {
                "nan".to_owned()
            } else {
                format!("{value:?}")
            };
            push_line(out, text.as_bytes());
        }
        Op::Int(TextInt::Bool(false)) => push_line(out, b"00"),
        Op::Int(TextInt::Bool(true)) => push_line(out, b"01"),
        Op::Int(TextInt::Decimal(digits)) => push_line(out, digits.as_bytes()),
        Op::BinInt(value) | Op::Ext4(value) => out.extend_from_slice(&value.to_le_bytes()),
        Op::BinInt1(value) | Op::BinGet(value) | Op::BinPut(value) | Op::Ext1(value) => {
            out.push(*value);
        }
        Op::Proto(value) => out.push(*value),
        Op::Long(digits) => {
            out.extend_from_slice(digits.as_bytes());
            push_line(out, b"L");
        }
        Op::BinInt2(value) | Op::Ext2(value) => out.extend_from_slice(&value.to_le_bytes()),
        Op::PersId(text) => push_line(out, text.as_bytes()),
        Op::String(bytes) => {
            out.push(b'\'');
            for &byte in bytes.iter() {
                match byte {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\'' => out.extend_from_slice(b"\\'"),
                    0x20..=0x7e => out.push(byte),
                    _ => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
                }
            }
            push_line(out, b"'");
        }
        Op::BinString(bytes)
        | Op::ShortBinString(bytes)
        | Op::ShortBinBytes(bytes)
        | Op::Long1(bytes)
        | Op::Long4(bytes)
        | Op::BinBytes(bytes)
        | Op::BinBytes8(bytes)
        | Op::ByteArray8(bytes) => push_counted(out, code, bytes),
        Op::Unicode(text) => {
            for ch in text.chars() {
                match u32::from(ch) {
                    // Python escapes these so the line stays one line and decodes back.
                    code @ (0x5c | 0x00 | 0x0a | 0x0d | 0x1a | 0x100..=0xffff) => {
                        out.extend_from_slice(format!("\\u{code:04x}").as_bytes());
                    }
                    code @ 0x10000.. => {
                        out.extend_from_slice(format!("\\U{code:08x}").as_bytes());
                    }
                    latin1 => out.push(latin1 as u8),
                }
            }
            out.push(b'\n');
        }
        Op::BinUnicode(text) | Op::ShortBinUnicode(text) | Op::BinUnicode8(text) => {
            push_counted(out, code, text.as_bytes());
        }
        Op::Global { module, name } | Op::Inst { module, name } => {
            push_line(out, module.as_bytes());
            push_line(out, name.as_bytes());
        }
        Op::Get(index) | Op::Put(index) => push_line(out, index.to_string().as_bytes()),
        Op::LongBinGet(index) | Op::LongBinPut(index) => {
            out.extend_from_slice(&index.to_le_bytes());
        }
        Op::BinFloat(value) => out.extend_from_slice(&value.to_be_bytes()),
        Op::Frame(length) => out.extend_from_slice(&length.to_le_bytes()),
        Op::Mark
        | Op::Stop
        | Op::Pop
        | Op::PopMark
        | Op::Dup
        | Op::None
        | Op::BinPersId
        | Op::Reduce
        | Op::Append
        | Op::Build
        | Op::Dict
        | Op::EmptyDict
        | Op::Appends
        | Op::List
        | Op::EmptyList
        | Op::Obj
        | Op::SetItem
        | Op::Tuple
        | Op::EmptyTuple
        | Op::SetItems
        | Op::NewObj
        | Op::Tuple1
        | Op::Tuple2
        | Op::Tuple3
        | Op::NewTrue
        | Op::NewFalse
        | Op::EmptySet
        | Op::AddItems
        | Op::FrozenSet
        | Op::NewObjEx
        | Op::StackGlobal
        | Op::Memoize
        | Op::NextBuffer
        | Op::ReadonlyBuffer => {}
    }
}

fn push_line(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Writes `bytes` after its length, a little-endian integer as wide as the table says
/// for opcode `code`. A length that does not fit is truncated, as the caller chose the
/// opcode.
fn push_counted(out: &mut Vec<u8>, code: u8, bytes: &[u8]) {
    let width = match spec(code).map(|spec| spec.arg) {
        Some(ArgForm::Counted(width) | ArgForm::SignedCounted(width)) => width,
        _ => 0,
    };
    let length = (bytes.len() as u64).to_le_bytes();
    out.extend_from_slice(length.get(..width).unwrap_or(&length));
    out.extend_from_slice(bytes);
}

/// An iterator over the ops of a stream with their offsets; see [`ops`].
#[derive(Debug, Clone)]
pub struct Ops<'a> {
    data: &'a [u8],
    offset: usize,
    done: bool,
}

/// Iterates over the ops of `data`: `(offset, op)` for each, stopping after
/// `STOP`, at the end of the input, or after the first error (offsets are
/// relative to `data`). The end of the input between two ops is not an error,
/// so that a fragment without `STOP` (an entry's value bytes) can be walked;
/// an op cut short is.
pub fn ops(data: &[u8]) -> Ops<'_> {
    Ops {
        data,
        offset: 0,
        done: false,
    }
}

impl Ops<'_> {
    /// The offset of the next op (after the last one returned).
    pub fn position(&self) -> usize {
        self.offset
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<(usize, Op<'a>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.offset..).unwrap_or_default();
        if self.done || rest.is_empty() {
            self.done = true;
            return None;
        }
        match parse_op(rest) {
            Ok((op, used)) => {
                let offset = self.offset;
                self.offset += used;
                self.done = op == Op::Stop;
                Some(Ok((offset, op)))
            }
            Err(error) => {
                self.done = true;
                Some(Err(error.shifted(self.offset as u64)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_table_matches_codes() {
        assert_eq!((0..=u8::MAX).filter_map(spec).count(), 68);
        assert_eq!(Op::ShortBinUnicode("a").name(), "SHORT_BINUNICODE");
        assert_eq!(Op::ReadonlyBuffer.name(), "READONLY_BUFFER");
    }

    #[test]
    fn text_arguments() {
        let parse = |bytes: &'static [u8]| parse_op(bytes).map(|(op, _)| op);
        assert_eq!(parse(b"I01\n"), Ok(Op::Int(TextInt::Bool(true))));
        assert_eq!(parse(b"I00\n"), Ok(Op::Int(TextInt::Bool(false))));
        assert_eq!(parse(b"I-12\n"), Ok(Op::Int(TextInt::Decimal("-12"))));
        assert_eq!(parse(b"L123L\n"), Ok(Op::Long("123")));
        assert_eq!(parse(b"F1.5\n"), Ok(Op::Float(1.5)));
        assert_eq!(parse(b"g12\n"), Ok(Op::Get(12)));
        assert_eq!(
            parse(b"S'a\\'\\x41\\n'\n"),
            Ok(Op::String(Cow::Owned(b"a'A\n".to_vec())))
        );
        assert_eq!(
            parse(b"V\\u20ac\xe9\\\\x\n"),
            Ok(Op::Unicode(Cow::Owned("\u{20ac}\u{e9}\\\\x".into())))
        );
        assert_eq!(
            parse(b"cos\nsystem\n"),
            Ok(Op::Global {
                module: "os",
                name: "system"
            })
        );
    }

    #[test]
    fn bad_text_arguments() {
        for bad in [
            &b"Iab\n"[..],
            b"S'abc\n",
            b"S'\\x4'\n",
            b"V\\u12\n",
            b"V\\ud800\n",
            b"g-1\n",
            b"F1.2.3\n",
        ] {
            let error = parse_op(bad).map(|(op, _)| op).unwrap_err();
            assert!(
                matches!(error.kind(), ErrorKind::BadArgument { .. }),
                "{bad:?}: {error}"
            );
        }
    }

    #[test]
    fn huge_length_is_an_error() {
        let mut input = vec![0x8e];
        input.extend_from_slice(&(1u64 << 63).to_le_bytes());
        let error = parse_op(&input).unwrap_err();
        assert!(matches!(
            error.kind(),
            ErrorKind::LengthTooLarge {
                opcode: "BINBYTES8",
                ..
            }
        ));
    }
}
