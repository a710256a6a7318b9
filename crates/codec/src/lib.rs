//! A safe, zero-copy codec for Python's pickle format, protocols 0 to 5.
//!
//! (Crate docs with a runnable example: to be written by the codec work.)

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod dis;
mod entry;
mod error;
mod op;
mod pickler;
mod unpickler;
mod value;

pub use crate::{
    dis::dis,
    entry::{decode_entry_value, encode_entry_value},
    error::{Error, ErrorKind},
    op::Op,
    pickler::dumps,
    unpickler::{loads, loads_with, Limits},
    value::{BigInt, Construct, Global, Object, Value},
};
