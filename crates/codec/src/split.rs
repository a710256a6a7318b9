//! Many values pickled with one call of Python's pickler: `pickle.dumps(values, 4)` of a
//! list is much faster than one call per value, but every entry stands alone (its memo
//! indices are its own, FORMAT.md). [`split_list_pickle`] cuts the pickle of a list into one
//! stand-alone pickle per item, copying in what an item shares with earlier items.

use std::borrow::Cow;
use std::ops::Range;

use crate::memo::counted_len;
use crate::op::{encode_op, parse_op, Op};
use crate::opcode::{bare_op, spec, ArgForm, BINFLOAT, BININT, BININT1, BININT2, PROTO, STOP};
use crate::restream::{get_op, put_op, stack_effect, StackEffect};
use crate::{entry_value_from_pickle, Error, ErrorKind};

/// How deep an item's copy may nest copies of what it shares (a GET of an
/// earlier item's part inside a copied part, and so on): past it, the item is
/// left to be pickled alone.
const MAX_COPY_DEPTH: usize = 64;

/// Splits the pickle of a list (`pickle.dumps(values, protocol)` with protocol
/// 2 or more, as CPython writes a list of two items or more) into one
/// stand-alone pickle per item: `PROTO 4`, the item's ops, `STOP`, each
/// loading as the item would from a `pickle.dumps` of its own (what
/// [`entry_value_from_pickle`] takes).
///
/// An item that reads a memo entry an earlier item stored (two values sharing
/// an object, a global or a string that Python interns) gets a copy of the
/// ops that built it, so that it loads alone; what it shares within itself
/// stays shared. An item that cannot be isolated so (it shares parts of a
/// structure that refers back to itself across items, or nests shared parts
/// deeper than 64 copies) is left out: pickle it alone.
///
/// Errors: an op that does not parse, a stream that is not a list filled by
/// `MARK` ... `APPENDS` batches, ops that take what is not on the stack,
/// `DUP`, or a memo store at an index other than the next.
///
/// ```
/// use mmappickle_codec::{entry_value_from_pickle, split_list_pickle};
///
/// // x = 'shared'; pickle.dumps([x, [x]], 4): the second item reads the first's string.
/// let stream = b"\x80\x04\x95\x13\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x06shared\x94]\x94h\x01ae.";
/// let items = split_list_pickle(stream)?;
/// assert_eq!(items.len(), 2);
/// assert_eq!(items.get(0), Some(&b"\x80\x04\x8c\x06shared."[..]));
/// // The second item builds its own copy of the string.
/// assert_eq!(items.get(1), Some(&b"\x80\x04]\x8c\x06shareda."[..]));
/// assert_eq!(entry_value_from_pickle(items.get(1).unwrap(), 1)?.0, b"]\x8c\x06shareda");
/// # Ok::<(), mmappickle_codec::Error>(())
/// ```
///
/// [`entry_value_from_pickle`]: crate::entry_value_from_pickle
pub fn split_list_pickle(stream: &[u8]) -> Result<SplitList, Error> {
    let list = ListPickle::parse(stream)?;
    let mut copier = Copier::new(&list);
    let mut split = SplitList {
        // Copies of shared parts make the items longer than the list (a page reserved and
        // not touched costs nothing; a reallocation copies and touches all).
        bytes: Vec::with_capacity(2 * stream.len() + 3 * list.items.len()),
        items: Vec::with_capacity(list.items.len()),
    };
    for item in 0..list.items.len() {
        let start = split.bytes.len();
        let copied = copier.stand_alone(item, &mut split.bytes);
        if copied.is_none() {
            split.bytes.truncate(start);
        }
        split.items.push(copied.map(|uses_memo| SplitItem {
            range: start..split.bytes.len(),
            uses_memo,
        }));
    }
    Ok(split)
}

/// The stand-alone pickles of the items of a list ([`split_list_pickle`]).
#[derive(Debug, Clone)]
pub struct SplitList {
    bytes: Vec<u8>,
    items: Vec<Option<SplitItem>>,
}

/// Where an item's pickle is in [`SplitList::bytes`], and whether it stores or reads the memo.
#[derive(Debug, Clone)]
struct SplitItem {
    range: Range<usize>,
    uses_memo: bool,
}

impl SplitList {
    /// The number of items of the list.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the list was empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The stand-alone pickle of item `item`; `None` when it could not be split out (or
    /// past the end).
    pub fn get(&self, item: usize) -> Option<&[u8]> {
        let range = self.items.get(item)?.as_ref()?.range.clone();
        self.bytes.get(range)
    }

    /// What [`entry_value_from_pickle`] makes of item `item`'s pickle with its memo
    /// numbered from `memo_start`: the entry value bytes and the next free memo index.
    /// Most items use no memo once split out; their value is their pickle without `PROTO`
    /// and `STOP`, borrowed, with no second pass over its ops. `None` when the item could
    /// not be split out (or past the end).
    #[allow(clippy::type_complexity)]
    pub fn entry_value(
        &self,
        item: usize,
        memo_start: u32,
    ) -> Option<Result<(Cow<'_, [u8]>, u32), Error>> {
        let SplitItem { range, uses_memo } = self.items.get(item)?.as_ref()?;
        let pickle = self.bytes.get(range.clone())?;
        if *uses_memo {
            return Some(
                entry_value_from_pickle(pickle, memo_start)
                    .map(|(value, memo_max)| (Cow::Owned(value), memo_max)),
            );
        }
        // The copier wrote `PROTO 4`, the item's ops, `STOP`.
        let value = pickle.get(2..pickle.len().checked_sub(1)?)?;
        Some(Ok((Cow::Borrowed(value), memo_start)))
    }
}

/// The op at the start of `rest` and its length; an op that pushes a number, a string or
/// bytes (the bulk of most pickles) is skipped by its length, its payload not decoded
/// (`None`: whoever reads the payload checks it).
// Inlined: its result otherwise goes through memory, a store-forwarding stall per op.
#[inline]
pub(crate) fn scan_op(rest: &[u8]) -> Result<(Option<Op<'_>>, usize), Error> {
    let code = rest.first().copied().unwrap_or(STOP);
    let number_len = match code {
        BININT1 => Some(2),
        BININT2 => Some(3),
        BININT => Some(5),
        BINFLOAT => Some(9),
        _ => None,
    };
    if let Some(len) = number_len.filter(|&len| len <= rest.len()) {
        return Ok((None, len));
    }
    match spec(code).map(|spec| spec.arg) {
        Some(ArgForm::Nothing) => {
            if let Some(op) = bare_op(code) {
                return Ok((Some(op), 1));
            }
        }
        Some(ArgForm::Counted(width) | ArgForm::SignedCounted(width)) => {
            if let Some(len) = counted_len(rest, width).filter(|&len| len <= rest.len()) {
                return Ok((None, len));
            }
        }
        _ => {}
    }
    // Other ops, and the errors.
    parse_op(rest).map(|(op, len)| (Some(op), len))
}

/// What becomes of an op of the stream that is not copied as it is into an item's own pickle.
#[derive(Debug, Clone, Copy)]
enum OpRole {
    /// Left out: `PROTO`, `FRAME`, the list and its batches.
    Skip,
    /// A memo store of this index of the stream.
    Store(u32),
    /// A memo read of this index of the stream.
    Get(u32),
}

/// An op of the stream that is not copied as it is (most ops are: they are not recorded).
#[derive(Debug)]
struct SpecialOp {
    /// Where the op is in the stream.
    start: u32,
    end: u32,
    role: OpRole,
}

/// No item (the list's own ops), or an object never stored in the memo.
const NO_ITEM: u32 = u32::MAX;

/// The end of the bytes of an object that is never whole (the list itself).
const NEVER_WHOLE: u32 = u32::MAX;

/// The bytes of the stream that build something: whole ops, from `start` to `end`.
#[derive(Debug, Clone, Copy)]
struct Built {
    start: u32,
    end: u32,
    /// The first special op at or after `start` (its index in `special_ops`).
    first_special: u32,
}

/// The stream's ops and what they build, found by one pass that follows the stack.
/// Offsets, items and memo indices are `u32`s (a stream of 4 GiB or more is refused; its
/// values are then pickled alone).
#[derive(Debug)]
struct ListPickle<'s> {
    stream: &'s [u8],
    /// The ops not copied as they are, in stream order.
    special_ops: Vec<SpecialOp>,
    /// For each memo index: the object stored there (in `objects`), and whether some GET
    /// reads it.
    stores: Vec<(u32, bool)>,
    /// For each object stored in the memo: the bytes that build it, from its first op to the
    /// last that changed or stored it (ops above it in between are parts of it, or popped:
    /// CPython pops only what it built for the item). The list's own end is [`NEVER_WHOLE`].
    objects: Vec<Built>,
    /// The bytes of each item of the list, in order.
    items: Vec<Built>,
}

/// An item on the unpickler's stack while the stream is followed.
#[derive(Debug, Clone, Copy)]
struct StackItem {
    /// Where its first op starts, and the first special op from there on.
    first: u32,
    first_special: u32,
    /// The object it is in `objects`, once stored in the memo ([`NO_ITEM`] before).
    object: u32,
}

/// Where the unpickler's stack stands while the stream is followed.
#[derive(Debug, Default)]
struct Stack {
    /// The items on the stack; the list is the first.
    items: Vec<StackItem>,
    /// Open marks: the number of items below each, and where its `MARK` starts (and the
    /// first special op from there on).
    marks: Vec<(usize, (u32, u32))>,
}

fn too_many(at: u64) -> Error {
    unsupported(
        "?",
        "less than 4 GiB, fewer than 2^32 items and memo indices",
        at,
    )
}

impl<'s> ListPickle<'s> {
    fn parse(stream: &'s [u8]) -> Result<Self, Error> {
        if u32::try_from(stream.len()).is_err() {
            return Err(too_many(u64::from(u32::MAX)));
        }
        // Guesses that fit pickles of small values (pages reserved past what is used are
        // never touched; growing by reallocation copies and touches more).
        let mut list = ListPickle {
            stream,
            special_ops: Vec::with_capacity(stream.len() / 8),
            stores: Vec::with_capacity(stream.len() / 16),
            objects: Vec::with_capacity(stream.len() / 16),
            items: Vec::new(),
        };
        let mut stack = Stack::default();
        // For each item of the list, counted from the first: where the last op that builds
        // it or touches it ends (0: none yet).
        let mut last_op_ends: Vec<u32> = Vec::with_capacity(stream.len() / 16);
        // The objects of the list's items taken in by the batches so far.
        let mut items_done: Vec<u32> = Vec::new();
        let mut stopped = false;
        let mut offset = 0;
        while let Some(rest) = stream.get(offset..).filter(|rest| !rest.is_empty()) {
            let at = offset as u64;
            if stopped {
                return Err(unsupported("STOP", "no bytes after STOP", at));
            }
            let (op, len) = scan_op(rest).map_err(|error| error.shifted(at))?;
            // The stream is shorter than 4 GiB, and has fewer special ops than bytes.
            let start = (offset as u32, list.special_ops.len() as u32);
            offset += len;
            let end = offset as u32;
            let role = match (&op, stack.items.len(), stack.marks.len()) {
                (Some(Op::Proto(_) | Op::Frame(_)), ..) => Some(OpRole::Skip),
                (Some(Op::EmptyList), 0, 0) => {
                    stack.items.push(StackItem {
                        first: start.0,
                        first_special: start.1,
                        object: NO_ITEM,
                    });
                    Some(OpRole::Skip)
                }
                (
                    Some(op @ (Op::Memoize | Op::Put(_) | Op::BinPut(_) | Op::LongBinPut(_))),
                    1,
                    0,
                ) => {
                    let object = list.new_object(start, NEVER_WHOLE, at)?;
                    list.store(op, object, at)?;
                    Some(OpRole::Skip)
                }
                (Some(Op::Mark), 1, 0) => {
                    stack.marks.push((1, start));
                    Some(OpRole::Skip)
                }
                (Some(Op::Stop), 1, 0) => {
                    stopped = true;
                    Some(OpRole::Skip)
                }
                (Some(Op::Appends), _, 1) => {
                    items_done.extend(stack.items.drain(1..).map(|item| item.object));
                    stack.marks.clear();
                    Some(OpRole::Skip)
                }
                (_, _, 0) => {
                    let name = op.as_ref().map_or("?", Op::name);
                    return Err(unsupported(
                        name,
                        "a list filled by MARK ... APPENDS batches",
                        at,
                    ));
                }
                _ => {
                    let effect = op.as_ref().map_or(PUSH, stack_effect);
                    // An op of an item builds the item of the lowest position of the
                    // list it touches: inside the item's first mark, the item the mark's
                    // closer makes or fills.
                    let position = match (stack.marks.get(1), effect) {
                        (Some(&(below, _)), StackEffect::ClosesMark { takes, .. })
                            if stack.marks.len() == 2 =>
                        {
                            below.saturating_sub(takes)
                        }
                        (Some(&(below, _)), _) => below,
                        (None, StackEffect::Items { takes, .. }) => {
                            stack.items.len().saturating_sub(takes)
                        }
                        (None, _) => stack.items.len(),
                    };
                    let item = items_done.len() + position.saturating_sub(1);
                    if item >= NO_ITEM as usize {
                        return Err(too_many(at));
                    }
                    if item >= last_op_ends.len() {
                        last_op_ends.resize(item + 1, 0);
                    }
                    last_op_ends[item] = end;
                    list.follow(op.as_ref(), effect, start, end, &mut stack, at)?
                }
            };
            if let Some(role) = role {
                list.special_ops.push(SpecialOp {
                    start: start.0,
                    end,
                    role,
                });
            }
        }
        if !stopped {
            return Err(Error::new(
                ErrorKind::UnexpectedEof { opcode: None },
                stream.len() as u64,
            ));
        }
        list.items = item_ranges(&last_op_ends, items_done.len(), &list.special_ops)
            .ok_or_else(|| unsupported("LIST", "ops of each item of the list", 0))?;
        // An item of the list is built by its ops, memo stores after it included.
        for (&object, &item) in items_done.iter().zip(&list.items) {
            if let Some(object_bytes) = list.objects.get_mut(object as usize) {
                *object_bytes = item;
            }
        }
        Ok(list)
    }

    /// A new object of the memo, built by the bytes from `first` (where an op starts, and
    /// the first special op from there on) to `end` so far.
    fn new_object(&mut self, first: (u32, u32), end: u32, at: u64) -> Result<u32, Error> {
        let id = u32::try_from(self.objects.len())
            .ok()
            .filter(|&id| id != NO_ITEM)
            .ok_or_else(|| too_many(at))?;
        self.objects.push(Built {
            start: first.0,
            end,
            first_special: first.1,
        });
        Ok(id)
    }

    /// Records that an op ending at `end` changed or stored the object `object`.
    fn touch(&mut self, object: u32, end: u32) {
        if let Some(bytes) = self.objects.get_mut(object as usize) {
            if bytes.end != NEVER_WHOLE {
                bytes.end = end;
            }
        }
    }

    /// Records a memo store of `object`: its index must be the next one, as `MEMOIZE`'s is.
    fn store(&mut self, op: &Op<'_>, object: u32, at: u64) -> Result<u32, Error> {
        let index = self.stores.len() as u64;
        let explicit = match *op {
            Op::Put(index) => Some(index),
            Op::BinPut(index) => Some(u64::from(index)),
            Op::LongBinPut(index) => Some(u64::from(index)),
            _ => None,
        };
        if explicit.is_some_and(|explicit| explicit != index) {
            return Err(unsupported(op.name(), "memo indices in order", at));
        }
        let index = u32::try_from(index).map_err(|_| too_many(at))?;
        self.stores.push((object, false));
        Ok(index)
    }

    /// Follows an op of an item (`None`: one that pushes a number, a string or bytes) on the
    /// stack: which items it takes and makes; its role when it is not copied as it is. The op
    /// starts at `start` (and the special ops from `start.1` on come after it), ends at `end`.
    fn follow(
        &mut self,
        op: Option<&Op<'_>>,
        effect: StackEffect,
        start: (u32, u32),
        end: u32,
        stack: &mut Stack,
        at: u64,
    ) -> Result<Option<OpRole>, Error> {
        let name = op.map_or("?", Op::name);
        let underflow = || Error::new(ErrorKind::StackUnderflow { opcode: name }, at);
        // Items below the innermost mark (or the list) are out of reach.
        let floor = stack.marks.last().map_or(1, |&(below, _)| below);
        let (takes, leaves) = match effect {
            StackEffect::Mark => {
                stack.marks.push((stack.items.len(), start));
                return Ok(None);
            }
            StackEffect::Stop => return Err(unsupported("STOP", "one list", at)),
            StackEffect::ClosesMark { takes, leaves } => {
                // The batch's MARK is closed by its APPENDS only.
                let (below, mark_start) = match stack.marks.pop() {
                    Some(mark) if !stack.marks.is_empty() => mark,
                    _ => return Err(Error::new(ErrorKind::MissingMark { opcode: name }, at)),
                };
                stack.items.truncate(below);
                let floor = stack.marks.last().map_or(1, |&(below, _)| below);
                match (takes, leaves) {
                    // APPENDS, SETITEMS, ADDITEMS: the container below stays.
                    (1, 1) if stack.items.len() > floor => {
                        let container = stack.items.last().map_or(NO_ITEM, |item| item.object);
                        self.touch(container, end);
                    }
                    (0, 1) => stack.items.push(StackItem {
                        first: mark_start.0,
                        first_special: mark_start.1,
                        object: NO_ITEM,
                    }),
                    (0, 0) => {}
                    _ => return Err(underflow()),
                }
                return Ok(None);
            }
            StackEffect::Items { takes, leaves } => (takes, leaves),
        };
        if stack.items.len() < floor + takes {
            return Err(underflow());
        }
        let first_taken = stack.items.len() - takes;
        let (role, keeps_container) = match op {
            Some(op @ (Op::Memoize | Op::Put(_) | Op::BinPut(_) | Op::LongBinPut(_))) => {
                let object = match stack.items.last_mut() {
                    Some(item) if item.object == NO_ITEM => {
                        item.object = self.new_object((item.first, item.first_special), end, at)?;
                        item.object
                    }
                    Some(item) => item.object,
                    None => NO_ITEM,
                };
                (Some(OpRole::Store(self.store(op, object, at)?)), true)
            }
            Some(&Op::Get(index)) => (Some(self.read(name, index, at)?), false),
            Some(&Op::BinGet(index)) => (Some(self.read(name, u64::from(index), at)?), false),
            Some(&Op::LongBinGet(index)) => (Some(self.read(name, u64::from(index), at)?), false),
            Some(Op::Dup) => return Err(unsupported(name, "no DUP", at)),
            // The lowest item taken stays (the same object); the others go into it.
            Some(Op::Append | Op::SetItem | Op::Build) => (None, true),
            _ => (None, false),
        };
        if keeps_container {
            stack.items.truncate(first_taken + 1);
            let container = stack.items.last().map_or(NO_ITEM, |item| item.object);
            self.touch(container, end);
        } else {
            let first = stack
                .items
                .get(first_taken)
                .map_or(start, |item| (item.first, item.first_special));
            stack.items.truncate(first_taken);
            for _ in 0..leaves {
                stack.items.push(StackItem {
                    first: first.0,
                    first_special: first.1,
                    object: NO_ITEM,
                });
            }
        }
        Ok(role)
    }

    fn read(&mut self, name: &'static str, index: u64, at: u64) -> Result<OpRole, Error> {
        let store = u32::try_from(index).ok().and_then(|index| {
            self.stores
                .get_mut(index as usize)
                .map(|store| (index, store))
        });
        match store {
            Some((index, (_, read))) => {
                *read = true;
                Ok(OpRole::Get(index))
            }
            None => Err(Error::new(
                ErrorKind::MemoMissing {
                    opcode: name,
                    index,
                },
                at,
            )),
        }
    }
}

/// The stack effect of the ops [`scan_op`] skips by their length.
const PUSH: StackEffect = StackEffect::Items {
    takes: 0,
    leaves: 1,
};

/// The bytes of `n_items` items from where the last op of each ends (0: none). An item's ops
/// are those from its first to the last op that touches it or an earlier item (CPython pops
/// what it built above an item, never below): item `i` ends where the last op of items
/// `0..=i` ends, and starts where item `i - 1` ends (the first at 0). `None` when an item
/// has no op of its own.
fn item_ranges(
    last_op_ends: &[u32],
    n_items: usize,
    special_ops: &[SpecialOp],
) -> Option<Vec<Built>> {
    let mut ranges = Vec::with_capacity(n_items);
    let (mut start, mut first_special) = (0, 0);
    for item in 0..n_items {
        let end = start.max(*last_op_ends.get(item)?);
        if end == start {
            return None;
        }
        ranges.push(Built {
            start,
            end,
            first_special: u32::try_from(first_special).ok()?,
        });
        start = end;
        while special_ops
            .get(first_special)
            .is_some_and(|special| special.start < start)
        {
            first_special += 1;
        }
    }
    Some(ranges)
}

/// Copies items out of a [`ListPickle`], each with the parts it shares.
struct Copier<'l, 's> {
    list: &'l ListPickle<'s>,
    /// For each memo index of the stream: 1 + the index in the item's own pickle, 0 when
    /// the item has not stored it.
    own_index: Vec<u32>,
    /// The stores of the item being copied, by their index in its own pickle.
    stored: Vec<OwnStore>,
}

/// A memo store of the item being copied.
struct OwnStore {
    /// Its index in the stream.
    index: u32,
    /// Where its op is in the output, if it was written (some GET of the stream reads it).
    put: Option<Range<usize>>,
    /// Whether the item itself reads it.
    read: bool,
}

impl<'l, 's> Copier<'l, 's> {
    fn new(list: &'l ListPickle<'s>) -> Self {
        Copier {
            list,
            own_index: vec![0; list.stores.len()],
            stored: Vec::new(),
        }
    }

    /// Appends the stand-alone pickle of item `item` to `out`, and says whether it stores or
    /// reads the memo; `None` when it cannot be split out (`out` then holds a part of it).
    fn stand_alone(&mut self, item: usize, out: &mut Vec<u8>) -> Option<bool> {
        for store in self.stored.drain(..) {
            if let Some(own) = self.own_index.get_mut(store.index as usize) {
                *own = 0;
            }
        }
        let built = *self.list.items.get(item)?;
        out.extend_from_slice(&[PROTO, 4]);
        self.copy(built, out, 0)?;
        out.push(STOP);
        // Stores that only other items read go, so that the entry's memo stays empty.
        // Bytes before the first store dropped stay; later ones move down over the gaps.
        let unread = self
            .stored
            .iter()
            .filter(|store| !store.read)
            .filter_map(|store| store.put.clone());
        let mut write_at = None;
        let mut from = 0;
        for put in unread {
            let to = match write_at {
                Some(to) => {
                    out.copy_within(from..put.start, to);
                    to + (put.start - from)
                }
                None => put.start,
            };
            write_at = Some(to);
            from = put.end;
        }
        if let Some(to) = write_at {
            let len = out.len();
            out.copy_within(from..len, to);
            out.truncate(to + (len - from));
        }
        // A store stays only when the item reads it, and a GET marks what it reads.
        Some(self.stored.iter().any(|store| store.read))
    }

    /// Copies the stream's bytes `built` into `out`, with what they read from elsewhere
    /// built in.
    fn copy(&mut self, built: Built, out: &mut Vec<u8>, depth: usize) -> Option<()> {
        let list = self.list;
        let (start, end) = (built.start as usize, built.end as usize);
        // The bytes between special ops are copied as they are, in one run each.
        let mut run_start = start;
        for special in list.special_ops.get(built.first_special as usize..)? {
            let special_start = special.start as usize;
            if special_start >= end {
                break;
            }
            out.extend_from_slice(list.stream.get(run_start..special_start)?);
            run_start = special.end as usize;
            match special.role {
                OpRole::Skip => {}
                OpRole::Store(index) => {
                    let own = self.own_index.get_mut(index as usize)?;
                    if *own != 0 {
                        // Stored twice: a structure that refers back to itself across items.
                        return None;
                    }
                    let new_index = u32::try_from(self.stored.len()).ok()?;
                    *own = new_index.checked_add(1)?;
                    let put = list.stores.get(index as usize)?.1.then(|| {
                        let at = out.len();
                        encode_op(&put_op(new_index), out);
                        at..out.len()
                    });
                    self.stored.push(OwnStore {
                        index,
                        put,
                        read: false,
                    });
                }
                OpRole::Get(index) => match self.own_index.get(index as usize)?.checked_sub(1) {
                    Some(own) => {
                        self.stored.get_mut(own as usize)?.read = true;
                        encode_op(&get_op(own), out);
                    }
                    None => {
                        // Stored by an earlier item: build it here, with its store.
                        if depth == MAX_COPY_DEPTH {
                            return None;
                        }
                        let (object, _) = *list.stores.get(index as usize)?;
                        let object_bytes = *list.objects.get(object as usize)?;
                        if object_bytes.end == NEVER_WHOLE {
                            return None;
                        }
                        self.copy(object_bytes, out, depth + 1)?;
                    }
                },
            }
        }
        out.extend_from_slice(list.stream.get(run_start..end)?);
        Some(())
    }
}

fn unsupported(opcode: &'static str, expected: &'static str, at: u64) -> Error {
    Error::new(
        ErrorKind::Unsupported {
            opcode,
            reason: expected,
        },
        at,
    )
}

#[cfg(test)]
mod tests {
    use arbitrary::{Arbitrary, Unstructured};

    use super::*;
    use crate::fuzzing::{pseudo_random_bytes, FuzzValue};
    use crate::{dumps, entry_value_from_pickle, loads, JoinedEntries, Value};

    /// Splits `list` and checks each item against its own pickle: both load the same, and
    /// the item makes an entry that joins with the others into one dict that loads so too.
    fn assert_items_load_as(list: &[u8], own: &[Vec<u8>]) {
        let items = split_list_pickle(list).unwrap();
        assert_eq!(items.len(), own.len());
        let mut joined = JoinedEntries::new();
        let mut expected = Vec::new();
        for (index, own) in own.iter().enumerate() {
            let item = items.get(index).expect("an item that stands alone");
            let value = loads(own).unwrap();
            assert_eq!(loads(item).unwrap(), value);
            let (entry_value, memo_max) = entry_value_from_pickle(item, 300).unwrap();
            let (direct, direct_memo_max) = items.entry_value(index, 300).unwrap().unwrap();
            assert_eq!((&*direct, direct_memo_max), (&entry_value[..], memo_max));
            let key = format!("k{index}");
            assert!(joined.push(&key, &entry_value));
            expected.push((Value::from(key), value));
        }
        assert_eq!(loads(&joined.finish()).unwrap(), Value::Dict(expected));
    }

    // d = datetime.date(2020, 1, 2); pickle.dumps([{'gain': 0.5, 'name': 'a'},
    // {'gain': 1.0, 'name': 'b'}, d, [d, d], datetime.date(2021, 3, 4)], 4): the dicts share
    // their interned keys, the dates their global, the list the first date.
    #[test]
    fn items_get_copies_of_what_they_share() {
        let list = b"\x80\x04\x95m\x00\x00\x00\x00\x00\x00\x00]\x94(}\x94(\x8c\x04gain\x94G?\xe0\x00\x00\x00\x00\x00\x00\x8c\x04name\x94\x8c\x01a\x94u}\x94(h\x02G?\xf0\x00\x00\x00\x00\x00\x00h\x03\x8c\x01b\x94u\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe4\x01\x02\x94\x85\x94R\x94]\x94(h\x0ch\x0ceh\x09C\x04\x07\xe5\x03\x04\x94\x85\x94R\x94e.";
        let own: [&[u8]; 5] = [
            b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04gain\x94G?\xe0\x00\x00\x00\x00\x00\x00\x8c\x04name\x94\x8c\x01a\x94u.",
            b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04gain\x94G?\xf0\x00\x00\x00\x00\x00\x00\x8c\x04name\x94\x8c\x01b\x94u.",
            b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe4\x01\x02\x94\x85\x94R\x94.",
            b"\x80\x04\x95&\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe4\x01\x02\x94\x85\x94R\x94h\x06e.",
            b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe5\x03\x04\x94\x85\x94R\x94.",
        ];
        assert_items_load_as(list, &own.map(<[u8]>::to_vec));
        // The list [d, d] keeps one date, read twice (one store, one GET).
        let items = split_list_pickle(list).unwrap();
        let (entry_value, memo_max) = entry_value_from_pickle(items.get(3).unwrap(), 7).unwrap();
        assert_eq!(memo_max, 8);
        assert!(entry_value.ends_with(b"Rq\x07h\x07e"));
    }

    // y = ('x', 'y'); x = [y]; pickle.dumps([x, y, x], 4): a part of an earlier item, and
    // a whole earlier item.
    #[test]
    fn items_get_copies_of_parts_and_of_whole_items() {
        let list = b"\x80\x04\x95\x16\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94\x8c\x01x\x94\x8c\x01y\x94\x86\x94ah\x04h\x01e.";
        let x: &[u8] = b"\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00]\x94\x8c\x01x\x94\x8c\x01y\x94\x86\x94a.";
        let y: &[u8] =
            b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x01x\x94\x8c\x01y\x94\x86\x94.";
        assert_items_load_as(list, &[x.to_vec(), y.to_vec(), x.to_vec()]);
    }

    // x = 'aaa'; y = 'bbb'; pickle.dumps([x, y, [y, x, x], [x, x, y]], 4): a copied store
    // the item reads stays, one only other items read goes, before or after it.
    #[test]
    fn stores_only_other_items_read_are_dropped() {
        let list = b"\x80\x04\x95%\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x03aaa\x94\x8c\x03bbb\x94]\x94(h\x02h\x01h\x01e]\x94(h\x01h\x01h\x02ee.";
        let items = split_list_pickle(list).unwrap();
        assert_eq!(items.get(0), Some(&b"\x80\x04\x8c\x03aaa."[..]));
        assert_eq!(items.get(1), Some(&b"\x80\x04\x8c\x03bbb."[..]));
        assert_eq!(
            items.get(2),
            Some(&b"\x80\x04](\x8c\x03bbb\x8c\x03aaaq\x02h\x02e."[..])
        );
        assert_eq!(
            items.get(3),
            Some(&b"\x80\x04](\x8c\x03aaaq\x01h\x01\x8c\x03bbbe."[..])
        );
    }

    // Items that cannot be isolated are None, the others are split.
    #[test]
    fn items_sharing_what_refers_back_are_left_alone() {
        // pickle.dumps([x, [y, x], 7], 4) (x and y as above): the second item's copy of y
        // would be stored again inside its copy of x.
        let part_then_whole = b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94\x8c\x01x\x94\x8c\x01y\x94\x86\x94a]\x94(h\x04h\x01eK\x07e.";
        let items = split_list_pickle(part_then_whole).unwrap();
        assert!(items.get(0).is_some());
        assert_eq!(items.get(1), None);
        assert_eq!(items.get(2), Some(&b"\x80\x04K\x07."[..]));
        // a = []; b = [a]; a.append(b); pickle.dumps([a, b, 3], 4): b is a part of a that
        // holds a.
        let cycle =
            b"\x80\x04\x95\x11\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94]\x94h\x01aah\x02K\x03e.";
        let items = split_list_pickle(cycle).unwrap();
        // b's store goes: only the second item reads it.
        assert_eq!(items.get(0), Some(&b"\x80\x04]q\x00]h\x00aa."[..]));
        assert_eq!(items.get(1), None);
        assert_eq!(items.get(2), Some(&b"\x80\x04K\x03."[..]));
    }

    // l = []; t = (l,); l.append(t); pickle.dumps([t, 5, t], 4): CPython builds t through
    // l, pops l and reads t back; those ops are the first item's, and the third item would
    // store t twice.
    #[test]
    fn ops_popped_within_an_item_are_the_items() {
        let list = b"\x80\x04\x95\x13\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94h\x01\x85\x94a0h\x02K\x05h\x02e.";
        let items = split_list_pickle(list).unwrap();
        assert_eq!(
            items.get(0),
            Some(&b"\x80\x04]q\x00h\x00\x85q\x01a0h\x01."[..])
        );
        assert_eq!(items.get(1), Some(&b"\x80\x04K\x05."[..]));
        assert_eq!((items.get(2), items.len()), (None, 3));
    }

    // Batches of 1000 items, frames cut inside items, values past 64 KiB.
    #[test]
    fn batches_and_frames_are_followed() {
        let mut values: Vec<Value> = (0..2500).map(Value::Int).collect();
        values.insert(999, Value::Bytes(vec![7; 70_000]));
        values.insert(1500, Value::List(vec![Value::from("s".repeat(70_000)); 3]));
        assert_list_splits(values);
    }

    /// The pickle of the list of `values` splits into items that load as each value's own.
    fn assert_list_splits(values: Vec<Value>) {
        let own: Vec<Vec<u8>> = values.iter().map(dumps).collect();
        assert_items_load_as(&dumps(&Value::List(values)), &own);
    }

    // Lists of values the fuzz generator makes (nested containers, objects, globals).
    #[test]
    fn generated_values_split() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100 {
            let bytes = pseudo_random_bytes(&mut state, 1024);
            let mut input = Unstructured::new(&bytes);
            let values = (0..4)
                .filter_map(|_| FuzzValue::arbitrary(&mut input).ok())
                .map(|fuzz| fuzz.value)
                .collect();
            assert_list_splits(values);
        }
    }

    // The scan skips pushes of numbers, strings and bytes by their length: the lengths are
    // the parser's, and so are the ops it does decode.
    #[test]
    fn the_scan_reads_ops_as_the_parser_does() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..50 {
            let bytes = pseudo_random_bytes(&mut state, 512);
            let Ok(fuzz) = FuzzValue::arbitrary_take_rest(Unstructured::new(&bytes)) else {
                continue;
            };
            let stream = dumps(&fuzz.value);
            let mut offset = 0;
            while let Some(rest) = stream.get(offset..).filter(|rest| !rest.is_empty()) {
                let (scanned, len) = scan_op(rest).unwrap();
                let (parsed, parsed_len) = parse_op(rest).unwrap();
                assert_eq!(len, parsed_len, "{rest:?}");
                if let Some(scanned) = scanned {
                    assert_eq!(scanned, parsed);
                }
                offset += len;
            }
        }
    }

    // Bytes changed, cut or added anywhere in list pickles: an error or items, never a panic;
    // each item is then a stream the entry rewrite takes or refuses, and any bytes join or not.
    #[test]
    fn damaged_streams_never_panic() {
        let mut state = 0x0bad_5eed_0bad_5eedu64;
        let shared = b"\x80\x04\x95m\x00\x00\x00\x00\x00\x00\x00]\x94(}\x94(\x8c\x04gain\x94G?\xe0\x00\x00\x00\x00\x00\x00\x8c\x04name\x94\x8c\x01a\x94u}\x94(h\x02G?\xf0\x00\x00\x00\x00\x00\x00h\x03\x8c\x01b\x94u\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe4\x01\x02\x94\x85\x94R\x94]\x94(h\x0ch\x0ceh\x09C\x04\x07\xe5\x03\x04\x94\x85\x94R\x94e.";
        let generated = dumps(&Value::List(
            (0..30)
                .filter_map(|_| {
                    let bytes = pseudo_random_bytes(&mut state, 64);
                    FuzzValue::arbitrary_take_rest(Unstructured::new(&bytes)).ok()
                })
                .map(|fuzz| fuzz.value)
                .collect(),
        ));
        for base in [&shared[..], &generated] {
            for _ in 0..2000 {
                let mut stream = base.to_vec();
                let noise = pseudo_random_bytes(&mut state, 4);
                let at = usize::from(u16::from_le_bytes([noise[0], noise[1]])) % stream.len();
                match noise[2] % 4 {
                    0 => stream[at] = noise[3],
                    1 => stream.truncate(at),
                    2 => stream.insert(at, noise[3]),
                    _ => stream[at] = stream[at].wrapping_add(1),
                }
                if let Ok(items) = split_list_pickle(&stream) {
                    for item in (0..items.len()).filter_map(|item| items.get(item)) {
                        let _ = entry_value_from_pickle(item, 1);
                    }
                }
                let _ = JoinedEntries::new().push("k", &stream[stream.len().min(2)..]);
            }
        }
    }

    #[test]
    fn other_streams_are_errors() {
        for (stream, offset) in [
            // pickle.dumps(5, 4); pickle.dumps([5], 4) (one item: APPEND, no batch)
            (&b"\x80\x04K\x05."[..], 2),
            (
                b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00]\x94K\x05a.",
                13,
            ),
            // cut short, bytes after STOP, a batch left open, a DUP, an item closing the
            // batch's mark, a memo index out of order, a GET of nothing
            (b"\x80\x04](K\x05", 6),
            (b"\x80\x04](K\x01K\x02e.N", 10),
            (b"\x80\x04](K\x01.", 6),
            (b"\x80\x04](K\x012K\x02e.", 6),
            (b"\x80\x04](K\x01K\x02te.", 8),
            (b"\x80\x04]q\x05(K\x01K\x02e.", 3),
            (b"\x80\x04](h\x00K\x02e.", 4),
        ] {
            let error = split_list_pickle(stream).unwrap_err();
            assert_eq!(error.offset(), offset, "{stream:?}: {error}");
        }
        assert!(split_list_pickle(b"\x80\x04]\x94.").unwrap().is_empty());
    }
}
