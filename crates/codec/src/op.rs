//! Pickle opcodes: the [`Op`] enum, a nom parser that decodes one op at a
//! time ([`parse_op`], [`ops`]) and the encoder that writes one back ([`encode_op`]).
//!
//! Arguments borrow from the input; only protocol 0's escaped text
//! (`STRING`, `UNICODE`) may need an owned copy, hence the `Cow`s.

use std::borrow::Cow;

use nom::bytes::complete::{take, take_until};
use nom::number::complete::{be_f64, le_i32, le_u16, le_u32, le_u64, le_u8};

use crate::opcode::OPCODES;
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
    NAMES_BY_CODE[usize::from(code)]
}

/// [`OPCODES`] indexed by byte, for a lookup per op without a search.
const NAMES_BY_CODE: [Option<&'static str>; 256] = {
    let mut table = [None; 256];
    let mut i = 0;
    while i < OPCODES.len() {
        table[OPCODES[i].0 as usize] = Some(OPCODES[i].1);
        i += 1;
    }
    table
};

impl Op<'_> {
    /// The opcode byte.
    pub fn code(&self) -> u8 {
        match self {
            Op::Mark => b'(',
            Op::Stop => b'.',
            Op::Pop => b'0',
            Op::PopMark => b'1',
            Op::Dup => b'2',
            Op::Float(_) => b'F',
            Op::Int(_) => b'I',
            Op::BinInt(_) => b'J',
            Op::BinInt1(_) => b'K',
            Op::Long(_) => b'L',
            Op::BinInt2(_) => b'M',
            Op::None => b'N',
            Op::PersId(_) => b'P',
            Op::BinPersId => b'Q',
            Op::Reduce => b'R',
            Op::String(_) => b'S',
            Op::BinString(_) => b'T',
            Op::ShortBinString(_) => b'U',
            Op::Unicode(_) => b'V',
            Op::BinUnicode(_) => b'X',
            Op::Append => b'a',
            Op::Build => b'b',
            Op::Global { .. } => b'c',
            Op::Dict => b'd',
            Op::EmptyDict => b'}',
            Op::Appends => b'e',
            Op::Get(_) => b'g',
            Op::BinGet(_) => b'h',
            Op::Inst { .. } => b'i',
            Op::LongBinGet(_) => b'j',
            Op::List => b'l',
            Op::EmptyList => b']',
            Op::Obj => b'o',
            Op::Put(_) => b'p',
            Op::BinPut(_) => b'q',
            Op::LongBinPut(_) => b'r',
            Op::SetItem => b's',
            Op::Tuple => b't',
            Op::EmptyTuple => b')',
            Op::SetItems => b'u',
            Op::BinFloat(_) => b'G',
            Op::Proto(_) => 0x80,
            Op::NewObj => 0x81,
            Op::Ext1(_) => 0x82,
            Op::Ext2(_) => 0x83,
            Op::Ext4(_) => 0x84,
            Op::Tuple1 => 0x85,
            Op::Tuple2 => 0x86,
            Op::Tuple3 => 0x87,
            Op::NewTrue => 0x88,
            Op::NewFalse => 0x89,
            Op::Long1(_) => 0x8a,
            Op::Long4(_) => 0x8b,
            Op::BinBytes(_) => b'B',
            Op::ShortBinBytes(_) => b'C',
            Op::ShortBinUnicode(_) => 0x8c,
            Op::BinUnicode8(_) => 0x8d,
            Op::BinBytes8(_) => 0x8e,
            Op::EmptySet => 0x8f,
            Op::AddItems => 0x90,
            Op::FrozenSet => 0x91,
            Op::NewObjEx => 0x92,
            Op::StackGlobal => 0x93,
            Op::Memoize => 0x94,
            Op::Frame(_) => 0x95,
            Op::ByteArray8(_) => 0x96,
            Op::NextBuffer => 0x97,
            Op::ReadonlyBuffer => 0x98,
        }
    }

    /// The `pickletools` name, e.g. `"SHORT_BINUNICODE"`.
    pub fn name(&self) -> &'static str {
        // Every code() is in OPCODES (a unit test checks it).
        opcode_name(self.code()).unwrap_or("?")
    }
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

    fn u8(&mut self) -> Result<u8, Error> {
        self.nom(le_u8)
    }

    /// `length` bytes, checked against the input before anything is sliced.
    fn bytes(&mut self, length: u64) -> Result<&'a [u8], Error> {
        match usize::try_from(length) {
            Ok(count) if count <= self.rest.len() => self.nom(take(count)),
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

    /// A length given as a signed 4-byte int, which must not be negative.
    fn length_i32(&mut self) -> Result<u64, Error> {
        let length = self.nom(le_i32)?;
        u64::try_from(length).map_err(|_| self.bad("a non-negative length"))
    }

    fn utf8(&self, bytes: &'a [u8]) -> Result<&'a str, Error> {
        std::str::from_utf8(bytes).map_err(|_| self.bad("UTF-8 text"))
    }

    /// One text line without its `\n`.
    fn line(&mut self) -> Result<&'a [u8], Error> {
        let line = self.nom(take_until(&b"\n"[..]))?;
        self.nom(take(1usize))?;
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
    fn decimal_index(&mut self) -> Result<u64, Error> {
        let line = self.ascii_line()?;
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
    let name = opcode_name(code).ok_or(Error::new(ErrorKind::UnknownOpcode(code), 0))?;
    let mut reader = ArgReader { rest: args, name };
    let r = &mut reader;
    let op = match code {
        b'(' => Op::Mark,
        b'.' => Op::Stop,
        b'0' => Op::Pop,
        b'1' => Op::PopMark,
        b'2' => Op::Dup,
        b'F' => {
            let text = r.ascii_line()?;
            Op::Float(
                text.trim_ascii()
                    .parse()
                    .map_err(|_| r.bad("a float as text"))?,
            )
        }
        b'I' => {
            let text = r.ascii_line()?;
            match text {
                "00" => Op::Int(TextInt::Bool(false)),
                "01" => Op::Int(TextInt::Bool(true)),
                _ => Op::Int(TextInt::Decimal(r.decimal(text)?)),
            }
        }
        b'J' => Op::BinInt(r.nom(le_i32)?),
        b'K' => Op::BinInt1(r.u8()?),
        b'L' => {
            let text = r.ascii_line()?;
            Op::Long(r.decimal(text.strip_suffix('L').unwrap_or(text))?)
        }
        b'M' => Op::BinInt2(r.nom(le_u16)?),
        b'N' => Op::None,
        b'P' => Op::PersId(r.ascii_line()?),
        b'Q' => Op::BinPersId,
        b'R' => Op::Reduce,
        b'S' => {
            let line = r.line()?;
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
        b'T' => {
            let length = r.length_i32()?;
            Op::BinString(r.bytes(length)?)
        }
        b'U' => {
            let length = r.u8()?;
            Op::ShortBinString(r.bytes(length.into())?)
        }
        b'V' => {
            let line = r.line()?;
            Op::Unicode(
                raw_unicode_escape_decode(line).ok_or_else(|| r.bad("raw-unicode-escape text"))?,
            )
        }
        b'X' => {
            let length = r.nom(le_u32)?;
            let bytes = r.bytes(length.into())?;
            Op::BinUnicode(r.utf8(bytes)?)
        }
        b'a' => Op::Append,
        b'b' => Op::Build,
        b'c' | b'i' => {
            let module = r.line()?;
            let module = r.utf8(module)?;
            let name = r.line()?;
            let name = r.utf8(name)?;
            if code == b'c' {
                Op::Global { module, name }
            } else {
                Op::Inst { module, name }
            }
        }
        b'd' => Op::Dict,
        b'}' => Op::EmptyDict,
        b'e' => Op::Appends,
        b'g' => Op::Get(r.decimal_index()?),
        b'h' => Op::BinGet(r.u8()?),
        b'j' => Op::LongBinGet(r.nom(le_u32)?),
        b'l' => Op::List,
        b']' => Op::EmptyList,
        b'o' => Op::Obj,
        b'p' => Op::Put(r.decimal_index()?),
        b'q' => Op::BinPut(r.u8()?),
        b'r' => Op::LongBinPut(r.nom(le_u32)?),
        b's' => Op::SetItem,
        b't' => Op::Tuple,
        b')' => Op::EmptyTuple,
        b'u' => Op::SetItems,
        b'G' => Op::BinFloat(r.nom(be_f64)?),
        0x80 => Op::Proto(r.u8()?),
        0x81 => Op::NewObj,
        0x82 => Op::Ext1(r.u8()?),
        0x83 => Op::Ext2(r.nom(le_u16)?),
        0x84 => Op::Ext4(r.nom(le_i32)?),
        0x85 => Op::Tuple1,
        0x86 => Op::Tuple2,
        0x87 => Op::Tuple3,
        0x88 => Op::NewTrue,
        0x89 => Op::NewFalse,
        0x8a => {
            let length = r.u8()?;
            Op::Long1(r.bytes(length.into())?)
        }
        0x8b => {
            let length = r.length_i32()?;
            Op::Long4(r.bytes(length)?)
        }
        b'B' => {
            let length = r.nom(le_u32)?;
            Op::BinBytes(r.bytes(length.into())?)
        }
        b'C' => {
            let length = r.u8()?;
            Op::ShortBinBytes(r.bytes(length.into())?)
        }
        0x8c => {
            let length = r.u8()?;
            let bytes = r.bytes(length.into())?;
            Op::ShortBinUnicode(r.utf8(bytes)?)
        }
        0x8d => {
            let length = r.nom(le_u64)?;
            let bytes = r.bytes(length)?;
            Op::BinUnicode8(r.utf8(bytes)?)
        }
        0x8e => {
            let length = r.nom(le_u64)?;
            Op::BinBytes8(r.bytes(length)?)
        }
        0x8f => Op::EmptySet,
        0x90 => Op::AddItems,
        0x91 => Op::FrozenSet,
        0x92 => Op::NewObjEx,
        0x93 => Op::StackGlobal,
        0x94 => Op::Memoize,
        0x95 => Op::Frame(r.nom(le_u64)?),
        0x96 => {
            let length = r.nom(le_u64)?;
            Op::ByteArray8(r.bytes(length)?)
        }
        0x97 => Op::NextBuffer,
        0x98 => Op::ReadonlyBuffer,
        _ => return Err(Error::new(ErrorKind::UnknownOpcode(code), 0)),
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
    out.push(op.code());
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
        Op::BinString(bytes) => push_counted(out, bytes, 4),
        Op::ShortBinString(bytes) | Op::ShortBinBytes(bytes) | Op::Long1(bytes) => {
            push_counted(out, bytes, 1);
        }
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
        Op::BinUnicode(text) => push_counted(out, text.as_bytes(), 4),
        Op::ShortBinUnicode(text) => push_counted(out, text.as_bytes(), 1),
        Op::BinUnicode8(text) => push_counted(out, text.as_bytes(), 8),
        Op::Global { module, name } | Op::Inst { module, name } => {
            push_line(out, module.as_bytes());
            push_line(out, name.as_bytes());
        }
        Op::Get(index) | Op::Put(index) => push_line(out, index.to_string().as_bytes()),
        Op::LongBinGet(index) | Op::LongBinPut(index) => {
            out.extend_from_slice(&index.to_le_bytes());
        }
        Op::BinFloat(value) => out.extend_from_slice(&value.to_be_bytes()),
        Op::Long4(bytes) | Op::BinBytes(bytes) => push_counted(out, bytes, 4),
        Op::BinBytes8(bytes) | Op::ByteArray8(bytes) => push_counted(out, bytes, 8),
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

/// Writes `bytes` after its length as a little-endian integer of `width` bytes.
/// A length that does not fit `width` is truncated, as the caller chose the opcode.
fn push_counted(out: &mut Vec<u8>, bytes: &[u8], width: usize) {
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
        let mut codes: Vec<u8> = OPCODES.iter().map(|(code, _)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 68);
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
