//! A whole pickle stream made into an entry's value bytes, at the opcode level.
//!
//! Python's `pickle.dumps(value, 4)` frames its output, memoizes every
//! container and string (`MEMOIZE`, numbered by the memo's size), and ends
//! with `STOP`. An entry's value must hold none of `PROTO`, `FRAME`, `STOP`
//! and `MEMOIZE`, and its memo indices must start where the file's previous
//! entries left off (FORMAT.md, "Generic values"). This module rewrites the
//! stream op by op, so that any value Python can pickle (objects that share
//! parts or contain themselves included) is stored exactly, without building
//! a value tree.

use std::collections::HashMap;

use crate::memo::counted_len;
use crate::op::{encode_op, parse_op, Op};
use crate::opcode::{BINUNICODE, BINUNICODE8, SHORT_BINUNICODE};
use crate::{Error, ErrorKind};

/// One memo store (`PUT`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`) of the stream.
struct Store {
    /// Whether some `GET` reads what it stored.
    read: bool,
}

/// What the first pass decided for one op of the stream.
enum Step {
    /// Copy the op's bytes unchanged.
    Copy { start: usize, end: usize },
    /// Left out (`PROTO`, `FRAME`, `STOP`).
    Drop,
    /// The memo store with this id, by the op at this offset of the stream.
    Store { store_id: usize, offset: usize },
    /// A `GET` (at this offset of the stream) of what the store with this id stored.
    Get { store_id: usize, offset: usize },
}

/// Rewrites a whole pickle stream (as `pickle.dumps(value, protocol)` gives,
/// protocol 0 to 5, framed or not) into an entry's value bytes whose memo
/// indices start at `memo_start`.
///
/// `PROTO`, `FRAME` and `STOP` are left out; a memo store that no `GET`
/// reads is dropped; the others become `BINPUT` / `LONG_BINPUT` numbered
/// from `memo_start` in stream order, and every `GET` reads the new index of
/// the store it read before (the latest store of its index, as the
/// unpickler's memo does). This is what Python mmappickle writes for the same
/// stream. Returns the bytes and the next free memo index (the entry's
/// `memo_max`).
///
/// Errors: an op that does not parse, a `GET` of an index nothing stored
/// before it ([`ErrorKind::MemoMissing`]), an op after `STOP` or no `STOP`, a
/// stream that does not leave exactly one value at its `STOP` or takes more
/// items than its stack holds ([`ErrorKind::BadEntryValue`]), a memo index
/// past `i32::MAX` (an entry records its `memo_max` as a `BININT`).
/// The stack is checked by counting items, as `pickle.dumps` streams always
/// pass: `pickle.loads` takes the top value at `STOP` and drops the rest, but
/// an entry's extra values would break the pickle of the whole file. What the
/// ops build is not otherwise checked;
/// [`decode_entry_value`](crate::decode_entry_value) checks it.
///
/// ```
/// use mmappickle_codec::entry_value_from_pickle;
///
/// // x = ['a']; pickle.dumps([x, x], 4): the inner list is shared.
/// let stream = b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94\x8c\x01a\x94ah\x01e.";
/// let (value, memo_max) = entry_value_from_pickle(stream, 7)?;
/// // Only the inner list's store is kept, renumbered 7; its GET follows.
/// assert_eq!(value, b"](]q\x07\x8c\x01aah\x07e");
/// assert_eq!(memo_max, 8);
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
pub fn entry_value_from_pickle(stream: &[u8], memo_start: u32) -> Result<(Vec<u8>, u32), Error> {
    if let Some(value) = without_memo(stream) {
        return Ok((value, memo_start));
    }
    let (steps, stores) = plan(stream)?;
    let mut new_index = vec![None; stores.len()];
    let mut next = memo_start;
    const MAX_INDEX: u32 = i32::MAX as u32;
    let too_many = |offset| {
        Error::new(
            ErrorKind::LimitExceeded {
                limit: "max_memo",
                max: MAX_INDEX as usize,
            },
            offset,
        )
    };
    let mut out = Vec::with_capacity(stream.len());
    for step in steps {
        match step {
            Step::Copy { start, end } => {
                out.extend_from_slice(stream.get(start..end).unwrap_or_default())
            }
            Step::Drop => {}
            Step::Store { store_id, offset } => {
                if stores.get(store_id).is_some_and(|store| store.read) {
                    let index = next;
                    next = next
                        .checked_add(1)
                        .filter(|&next| next <= MAX_INDEX)
                        .ok_or_else(|| too_many(offset as u64))?;
                    if let Some(slot) = new_index.get_mut(store_id) {
                        *slot = Some(index);
                    }
                    encode_op(&put_op(index), &mut out);
                }
            }
            Step::Get { store_id, offset } => {
                // A GET reads a store that came before it, so its index is known.
                let index = new_index
                    .get(store_id)
                    .copied()
                    .flatten()
                    .ok_or_else(|| too_many(offset as u64))?;
                encode_op(&get_op(index), &mut out);
            }
        }
    }
    Ok((out, next))
}

/// [`parse_op`], taking text that holds surrogates as text all the same: `pickle.dumps`
/// writes a `str` holding a lone surrogate (a file name decoded with `surrogateescape`) with
/// `surrogatepass`, and `pickle.loads` reads it back. Other bytes that are not UTF-8 stay an
/// error, as `pickle.loads` refuses them. The restream copies the op's bytes as they are:
/// only what it does to the stack matters here (it pushes one value).
pub(crate) fn parse_op_any_text(rest: &[u8]) -> Result<(Op<'_>, usize), Error> {
    parse_op(rest).or_else(|error| {
        let width = match rest.first() {
            Some(&SHORT_BINUNICODE) => 1,
            Some(&BINUNICODE) => 4,
            Some(&BINUNICODE8) => 8,
            _ => return Err(error),
        };
        match counted_len(rest, width) {
            Some(len) if len <= rest.len() && is_utf8_with_surrogates(&rest[1 + width..len]) => {
                Ok((Op::ShortBinUnicode(""), len))
            }
            _ => Err(error),
        }
    })
}

/// Whether `text` is UTF-8 in which surrogates (U+D800 to U+DFFF, `ED A0..BF 80..BF`) may
/// stand: what Python decodes with `surrogatepass`.
fn is_utf8_with_surrogates(mut text: &[u8]) -> bool {
    loop {
        match std::str::from_utf8(text) {
            Ok(_) => return true,
            Err(error) => {
                let at = error.valid_up_to();
                match text.get(at..at + 3) {
                    Some([0xed, 0xa0..=0xbf, 0x80..=0xbf]) => text = &text[at + 3..],
                    _ => return false,
                }
            }
        }
    }
}

/// The value bytes of a stream that uses no memo (most pickles of small values, once split
/// out of a batch), in one pass: its ops but `PROTO`, `FRAME` and `STOP`. `None` for any
/// other stream, and for a stream with an error (the general path reports it).
fn without_memo(stream: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(stream.len());
    let mut stack = StackCount::default();
    let mut offset = 0;
    let mut stopped = false;
    while let Some(rest) = stream.get(offset..).filter(|rest| !rest.is_empty()) {
        let (op, len) = parse_op_any_text(rest).ok()?;
        if stopped {
            return None;
        }
        match op {
            Op::Put(_)
            | Op::BinPut(_)
            | Op::LongBinPut(_)
            | Op::Memoize
            | Op::Get(_)
            | Op::BinGet(_)
            | Op::LongBinGet(_) => return None,
            Op::Proto(_) | Op::Frame(_) => {}
            Op::Stop => stopped = true,
            _ => out.extend_from_slice(rest.get(..len)?),
        }
        stack.apply(&op).ok()?;
        offset += len;
    }
    stopped.then_some(out)
}

/// The first pass: what to do with each op, and which stores are read.
fn plan(stream: &[u8]) -> Result<(Vec<Step>, Vec<Store>), Error> {
    let mut steps = Vec::new();
    let mut stores: Vec<Store> = Vec::new();
    // The latest store of each index the stream used (what a GET of it reads).
    let mut latest: HashMap<u64, usize> = HashMap::new();
    let mut offset = 0;
    let mut stopped = false;
    let mut stack = StackCount::default();
    while let Some(rest) = stream.get(offset..).filter(|rest| !rest.is_empty()) {
        if stopped {
            return Err(Error::new(
                ErrorKind::BadEntryValue {
                    problem: "bytes after STOP",
                },
                offset as u64,
            ));
        }
        let (op, len) = parse_op_any_text(rest).map_err(|error| error.shifted(offset as u64))?;
        stack
            .apply(&op)
            .map_err(|problem| Error::new(ErrorKind::BadEntryValue { problem }, offset as u64))?;
        let end = offset + len;
        let stored_index = match op {
            Op::Put(index) => Some(index),
            Op::BinPut(index) => Some(u64::from(index)),
            Op::LongBinPut(index) => Some(u64::from(index)),
            // MEMOIZE numbers by the memo's size: the number of distinct indices stored.
            Op::Memoize => Some(latest.len() as u64),
            _ => None,
        };
        let read_index = match op {
            Op::Get(index) => Some(index),
            Op::BinGet(index) => Some(u64::from(index)),
            Op::LongBinGet(index) => Some(u64::from(index)),
            _ => None,
        };
        let step = if let Some(index) = stored_index {
            latest.insert(index, stores.len());
            stores.push(Store { read: false });
            Step::Store {
                store_id: stores.len() - 1,
                offset,
            }
        } else if let Some(index) = read_index {
            let store_id = *latest.get(&index).ok_or_else(|| {
                Error::new(
                    ErrorKind::MemoMissing {
                        opcode: op.name(),
                        index,
                    },
                    offset as u64,
                )
            })?;
            if let Some(store) = stores.get_mut(store_id) {
                store.read = true;
            }
            Step::Get { store_id, offset }
        } else {
            match op {
                Op::Stop => {
                    stopped = true;
                    Step::Drop
                }
                Op::Proto(_) | Op::Frame(_) => Step::Drop,
                _ => Step::Copy { start: offset, end },
            }
        };
        steps.push(step);
        offset = end;
    }
    if !stopped {
        return Err(Error::new(
            ErrorKind::UnexpectedEof { opcode: None },
            stream.len() as u64,
        ));
    }
    Ok((steps, stores))
}

/// The unpickler's stack, counted: the items above the innermost open `MARK`,
/// and those below each open `MARK`.
#[derive(Debug, Clone, Default)]
pub(crate) struct StackCount {
    items: usize,
    below_marks: Vec<usize>,
}

impl StackCount {
    /// Back to an empty stack (keeping the room of the marks).
    pub(crate) fn clear(&mut self) {
        self.items = 0;
        self.below_marks.clear();
    }

    /// Counts what `op` takes from and leaves on the stack; the problem when
    /// it takes more than there is, or when `STOP` leaves other than one value.
    pub(crate) fn apply(&mut self, op: &Op<'_>) -> Result<(), &'static str> {
        const UNDERFLOW: &str = "an op taking more items than the stack holds";
        let (takes, leaves) = match stack_effect(op) {
            StackEffect::Mark => {
                self.below_marks.push(self.items);
                self.items = 0;
                return Ok(());
            }
            StackEffect::Stop => {
                return if self.items == 1 && self.below_marks.is_empty() {
                    Ok(())
                } else {
                    Err("a stream that does not leave exactly one value at STOP")
                };
            }
            StackEffect::ClosesMark { takes, leaves } => {
                self.pop_mark()?;
                (takes, leaves)
            }
            StackEffect::Items { takes, leaves } => (takes, leaves),
        };
        self.items = self.items.checked_sub(takes).ok_or(UNDERFLOW)? + leaves;
        Ok(())
    }

    /// Drops the items above the innermost MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<(), &'static str> {
        self.items = self
            .below_marks
            .pop()
            .ok_or("an op taking items above a MARK with no MARK open")?;
        Ok(())
    }
}

/// What an op does to the unpickler's stack, in items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StackEffect {
    /// `MARK`: opens a mark.
    Mark,
    /// `STOP`: the stream ends with the value on top.
    Stop,
    /// Drops the items above the innermost `MARK` and the `MARK`, then takes
    /// `takes` items below it and leaves `leaves`.
    ClosesMark { takes: usize, leaves: usize },
    /// Takes `takes` items and leaves `leaves`.
    Items { takes: usize, leaves: usize },
}

/// What `op` does to the unpickler's stack.
pub(crate) fn stack_effect(op: &Op<'_>) -> StackEffect {
    let items = |takes, leaves| StackEffect::Items { takes, leaves };
    match op {
        Op::Mark => StackEffect::Mark,
        Op::Stop => StackEffect::Stop,
        // Ops that take the items above the innermost MARK.
        Op::Tuple | Op::List | Op::Dict | Op::FrozenSet | Op::Inst { .. } | Op::Obj => {
            StackEffect::ClosesMark {
                takes: 0,
                leaves: 1,
            }
        }
        // These add the items to the container below the MARK.
        Op::Appends | Op::SetItems | Op::AddItems => StackEffect::ClosesMark {
            takes: 1,
            leaves: 1,
        },
        Op::PopMark => StackEffect::ClosesMark {
            takes: 0,
            leaves: 0,
        },
        Op::Proto(_) | Op::Frame(_) => items(0, 0),
        Op::Pop => items(1, 0),
        Op::Dup => items(1, 2),
        Op::Put(_)
        | Op::BinPut(_)
        | Op::LongBinPut(_)
        | Op::Memoize
        | Op::Tuple1
        | Op::BinPersId
        | Op::ReadonlyBuffer => items(1, 1),
        Op::Append | Op::Build | Op::Reduce | Op::NewObj | Op::StackGlobal | Op::Tuple2 => {
            items(2, 1)
        }
        Op::SetItem | Op::NewObjEx | Op::Tuple3 => items(3, 1),
        Op::Int(_)
        | Op::BinInt(_)
        | Op::BinInt1(_)
        | Op::BinInt2(_)
        | Op::Long(_)
        | Op::Long1(_)
        | Op::Long4(_)
        | Op::Float(_)
        | Op::BinFloat(_)
        | Op::None
        | Op::NewTrue
        | Op::NewFalse
        | Op::String(_)
        | Op::BinString(_)
        | Op::ShortBinString(_)
        | Op::Unicode(_)
        | Op::BinUnicode(_)
        | Op::ShortBinUnicode(_)
        | Op::BinUnicode8(_)
        | Op::BinBytes(_)
        | Op::ShortBinBytes(_)
        | Op::BinBytes8(_)
        | Op::ByteArray8(_)
        | Op::EmptyDict
        | Op::EmptyList
        | Op::EmptyTuple
        | Op::EmptySet
        | Op::Global { .. }
        | Op::Get(_)
        | Op::BinGet(_)
        | Op::LongBinGet(_)
        | Op::PersId(_)
        | Op::Ext1(_)
        | Op::Ext2(_)
        | Op::Ext4(_)
        | Op::NextBuffer => items(0, 1),
    }
}

pub(crate) fn put_op(index: u32) -> Op<'static> {
    match u8::try_from(index) {
        Ok(small) => Op::BinPut(small),
        Err(_) => Op::LongBinPut(index),
    }
}

pub(crate) fn get_op(index: u32) -> Op<'static> {
    match u8::try_from(index) {
        Ok(small) => Op::BinGet(small),
        Err(_) => Op::LongBinGet(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_entry_value, Limits, Value};

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut stream = b"\x80\x04\x95".to_vec();
        stream.extend_from_slice(&(body.len() as u64).to_le_bytes());
        stream.extend_from_slice(body);
        stream
    }

    // pickle.dumps([1, 'a'], 4): nothing is shared, so every MEMOIZE goes.
    #[test]
    fn unread_stores_are_dropped() {
        let stream = framed(b"]\x94(K\x01\x8c\x01a\x94e.");
        let (value, memo_max) = entry_value_from_pickle(&stream, 1).unwrap();
        assert_eq!(value, b"](K\x01\x8c\x01ae");
        assert_eq!(memo_max, 1);
    }

    // A stream with no memo op at all (what a batch's split gives) is copied in one pass, as
    // the general path would: its ops but PROTO, FRAME and STOP, the memo start unchanged.
    #[test]
    fn streams_without_memo_are_copied() {
        let stream = framed(b"](K\x01\x8c\x01a\x95\x01\x00\x00\x00\x00\x00\x00\x00Ne.");
        let (value, memo_max) = entry_value_from_pickle(&stream, 9).unwrap();
        assert_eq!(value, b"](K\x01\x8c\x01aNe");
        assert_eq!(memo_max, 9);
        assert_eq!(without_memo(&stream), Some(value));
        // A memo op, or an error, leaves the stream to the general path.
        assert_eq!(without_memo(&framed(b"]\x94.")), None);
        assert_eq!(without_memo(b"\x80\x04NN."), None);
        assert_eq!(without_memo(b"\x80\x04N.N"), None);
        assert_eq!(without_memo(b"\x80\x04N"), None);
    }

    // pickle.dumps(['\ud800', 'x\udcff'], 4): text with lone surrogates (surrogatepass), in
    // a SHORT_BINUNICODE and a BINUNICODE, kept byte for byte, by both paths.
    #[test]
    fn text_with_lone_surrogates_is_copied_as_it_is() {
        let body = b"]\x94(\x8c\x03\xed\xa0\x80\x94X\x04\x00\x00\x00x\xed\xb3\xbf\x94e.";
        let (value, memo_max) = entry_value_from_pickle(&framed(body), 2).unwrap();
        assert_eq!(
            value,
            b"](\x8c\x03\xed\xa0\x80X\x04\x00\x00\x00x\xed\xb3\xbfe"
        );
        assert_eq!(memo_max, 2);
        let without = b"\x80\x04\x8c\x03\xed\xa0\x80.";
        assert_eq!(
            without_memo(without),
            Some(b"\x8c\x03\xed\xa0\x80".to_vec())
        );
        // A length past the end is still an error, and so are bytes that are not UTF-8 even
        // with surrogates (pickle.loads refuses them).
        assert!(entry_value_from_pickle(b"\x80\x04\x8c\x05\xed\xa0\x80.", 0).is_err());
        assert!(entry_value_from_pickle(b"\x80\x04\x8c\x01\x94.", 0).is_err());
        assert!(entry_value_from_pickle(b"\x80\x04\x8c\x02\xed\xa0.", 0).is_err());
        assert!(entry_value_from_pickle(b"\x80\x04\x8c\x03\xed\xc0\x80.", 0).is_err());
        assert!(is_utf8_with_surrogates(b"a\xed\xb3\xbfb\xed\xa0\x80"));
    }

    // s = 'k'; pickle.dumps({s: s}, 4): the string is shared by key and value.
    #[test]
    fn shared_string_keeps_its_store() {
        let stream = framed(b"}\x94\x8c\x01k\x94h\x01s.");
        let (value, memo_max) = entry_value_from_pickle(&stream, 300).unwrap();
        assert_eq!(value, b"}\x8c\x01kr\x2c\x01\x00\x00j\x2c\x01\x00\x00s");
        assert_eq!(memo_max, 301);
        let decoded = decode_entry_value(&value, &Limits::default()).unwrap();
        assert_eq!(
            decoded,
            Value::Dict(vec![(Value::from("k"), Value::from("k"))])
        );
    }

    // A GET of the latest store of an index, not of an earlier one.
    #[test]
    fn get_reads_the_latest_store_of_its_index() {
        // PUT 0 'a', PUT 0 'b' (overwrites), then GET 0 reads 'b'.
        let stream = b"\x80\x02(\x8c\x01aq\x00\x8c\x01bq\x00h\x00l.";
        let (value, memo_max) = entry_value_from_pickle(stream, 5).unwrap();
        assert_eq!(value, b"(\x8c\x01a\x8c\x01bq\x05h\x05l");
        assert_eq!(memo_max, 6);
    }

    #[test]
    fn malformed_streams_are_errors() {
        let missing = entry_value_from_pickle(b"\x80\x04h\x03.", 1).unwrap_err();
        assert!(matches!(
            missing.kind(),
            ErrorKind::MemoMissing { index: 3, .. }
        ));
        assert_eq!(missing.offset(), 2);
        let trailing = entry_value_from_pickle(b"\x80\x04N.N", 1).unwrap_err();
        assert!(matches!(trailing.kind(), ErrorKind::BadEntryValue { .. }));
        let unstopped = entry_value_from_pickle(b"\x80\x04N", 1).unwrap_err();
        assert!(matches!(unstopped.kind(), ErrorKind::UnexpectedEof { .. }));
        let cut = entry_value_from_pickle(b"\x80\x04\x8c\x05ab", 1).unwrap_err();
        assert_eq!(cut.offset(), 2);
        assert!(entry_value_from_pickle(b"", 1).is_err());
        // The entry records its memo_max as an i32.
        let shared = framed(b"}\x94\x8c\x01k\x94h\x01s.");
        let error = entry_value_from_pickle(&shared, i32::MAX as u32).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::LimitExceeded { .. }));
        // At the store that went past it, in the stream (MEMOIZE after 'k').
        assert_eq!(error.offset(), 16);
    }

    // pickle.loads takes the top value at STOP; an entry must hold exactly one, so streams
    // that leave more (or fewer), leave a MARK open or take what is not there are errors.
    #[test]
    fn streams_of_other_than_one_value_are_errors() {
        for (stream, offset) in [
            (&b"\x80\x04NN."[..], 4),
            (b"\x80\x04(N.", 4),
            (b"\x80\x040.", 2),
            (b"\x80\x04Na.", 3),
            (b"\x80\x04Nt.", 3),
            (b"\x80\x04]NNe.", 5),
            // (10,) then set([1, 2, 3, 300]), as the fuzzer made it: loads gives the set.
            (
                b"(K\nt\x80\x03cbuiltins\nset\n]q\x01(K\x01K\x02K\x03M,\x01e\x85R.",
                36,
            ),
        ] {
            let error = entry_value_from_pickle(stream, 1).unwrap_err();
            assert!(
                matches!(error.kind(), ErrorKind::BadEntryValue { .. }),
                "{stream:?}: {error}"
            );
            assert_eq!(error.offset(), offset, "{stream:?}: {error}");
        }
        // Items above a MARK and below it are counted apart.
        let (value, _) = entry_value_from_pickle(b"\x80\x02](N(K\x01tNe.", 1).unwrap();
        assert_eq!(value, b"](N(K\x01tNe");
    }
}
