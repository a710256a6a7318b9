//! serde for values: any `Serialize` type to a [`Value`] tree and back, in the
//! shapes Python itself would use, and serde impls for [`Value`].
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
//! float, found str`.

mod de;
mod error;
mod impls;
mod ser;

pub use self::{de::from_value, error::SerdeError, ser::to_value};
