//! A safe, zero-copy codec for Python's pickle format, protocols 0 to 5.
//!
//! - [`parse_op`] / [`ops`] decode opcodes one at a time (arguments borrow
//!   from the input), [`encode_op`] writes them back.
//! - [`loads`] / [`loads_with`] unpickle a whole stream into a [`Value`] tree
//!   without running or importing anything: a global stays a [`Global`], an
//!   object built by `REDUCE` / `NEWOBJ` / `BUILD` stays an [`Object`] node.
//!   It is an iterative stack machine bounded by [`Limits`]; no input makes it
//!   panic, recurse on input depth, or allocate by an unchecked length.
//!   The calls that CPython writes for builtins that have no opcode at
//!   older protocols give native values, as Python does, when they are
//!   exactly that call (same callable, argument count and types, no keyword
//!   arguments, nothing applied afterwards); any other shape stays an
//!   object node:
//!
//!   | `REDUCE` of | with arguments | gives |
//!   |---|---|---|
//!   | `_codecs.encode` | `(str, 'latin1')`, every char below 256 | [`Value::Bytes`] |
//!   | `builtins.bytes` | `()` | empty [`Value::Bytes`] |
//!   | `builtins.bytearray` | `()`, `(bytes,)` or `(str, 'latin-1')` | [`Value::ByteArray`] |
//!   | `builtins.set` | `(list,)` | [`Value::Set`] |
//!   | `builtins.frozenset` | `(list,)` | [`Value::FrozenSet`] |
//!
//!   (`__builtin__` is accepted for `builtins`, as protocols 0-2 write it;
//!   `'latin1'` and `'latin-1'` for the encoding.) So `loads(&dumps(&v)) == v`
//!   for every value, and a `bytes` pickled at protocol 2 loads as bytes.
//! - [`dumps`] pickles a [`Value`]; [`dis`] disassembles a stream like
//!   `pickletools.dis`.
//! - [`split_list_pickle`] cuts the pickle of a list into one stand-alone
//!   pickle per item, and [`JoinedEntries`] joins entries into the pickle of
//!   one dict: a binding pickles or unpickles a batch with one call.
//!
//! ```
//! use mmappickle_codec::{dis, loads, Value};
//!
//! // pickle.dumps({'a': [1, True]}, 2)
//! let data = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01\x88es.";
//! let Value::Dict(pairs) = loads(data)? else { panic!("not a dict") };
//! assert_eq!(pairs[0].0, Value::from("a"));
//! assert_eq!(pairs[0].1, Value::List(vec![Value::Int(1), Value::Bool(true)]));
//!
//! let listing = dis(data);
//! assert!(listing.lines().any(|line| line.contains("SHORT_BINUNICODE") || line.contains("BINUNICODE")));
//! # Ok::<(), mmappickle_codec::Error>(())
//! ```
//!
//! ## serde
//!
//! With the `serde` feature, `to_value` / `from_value` convert between any
//! serde type and a [`Value`]:
//!
//! | Rust (serde data model) | Python |
//! |---|---|
//! | struct, map | `dict` (struct fields as `str` keys, in order) |
//! | sequence | `list` |
//! | tuple, tuple struct | `tuple` |
//! | `None`, `()`, unit struct | `None` |
//! | `Some(v)`, newtype struct | `v` |
//! | integers (up to 128 bits) | `int` |
//! | floats | `float` |
//! | `char`, string | `str` |
//! | bytes (`serde_bytes`) | `bytes` |
//! | enum variant | `'Unit'`, `{'Newtype': v}`, `{'Tuple': (..)}`, `{'Struct': {..}}` |
//!
//! Map keys become hashable Python values (a sequence key a `tuple`); a key
//! Python could not hash (a `dict`) is an error. Reading back accepts what
//! Python would naturally write: a `list`, `tuple`, `set` or `frozenset` for
//! a sequence, an `int` for a float, `bytes` or `bytearray` for bytes or a
//! `Vec<u8>`. Errors name the path of the field: `scan[3].gain: expected
//! float, found str`. A [`Value`] goes through both ways as it is (a `Value`
//! field holds anything, object nodes included); to other formats (JSON,
//! TOML...) it goes in its natural form, as lossy as Python's `json`: tuples
//! and sets as sequences, a global as `"module.name"`, and an object node or
//! an int beyond 128 bits is an error. Containers nest at most 128 deep
//! (deeper is an error, as in `serde_json`), so a hostile file cannot
//! overflow the stack.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bigint;
mod builtins;
mod dis;
mod entry;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod joined;
mod memo;
mod op;
pub mod opcode;
mod pickler;
mod restream;
mod split;
mod unpickler;
mod value;
#[cfg(feature = "serde")]
mod value_serde;
mod value_writer;

#[cfg(feature = "serde")]
pub use crate::value_serde::{from_value, to_value, SerdeError};
pub use crate::{
    dis::{dis, dis_ops, DisOp, DisOps},
    entry::{decode_entry_value, encode_entry_value},
    error::{Error, ErrorKind},
    joined::JoinedEntries,
    op::{encode_op, opcode_name, ops, parse_op, Op, Ops, TextInt},
    pickler::{dumps, encode_int, EncodedInt},
    restream::entry_value_from_pickle,
    split::{split_list_pickle, SplitList},
    unpickler::{loads, loads_with, Limits},
    value::{BigInt, Construct, Global, Object, Value},
    value_writer::{EncodedValue, ValueWriter},
};
