//! serde for values: any `Serialize` type to a [`Value`](crate::Value) tree
//! and back, in the shapes Python itself would use (the mapping is in the
//! crate docs), and serde impls for `Value`.

mod de;
mod error;
mod impls;
mod ser;

pub use self::{de::from_value, error::SerdeError, ser::to_value};

/// The deepest nesting of containers that `to_value` / `from_value` convert
/// (as `serde_json`'s): their recursion stays well inside a thread's stack,
/// even unoptimized, whatever a file holds.
pub(crate) const MAX_NESTING: usize = 128;
