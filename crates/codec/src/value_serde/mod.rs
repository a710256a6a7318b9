//! serde for values: any `Serialize` type to a [`Value`](crate::Value) tree
//! and back, in the shapes Python itself would use (the mapping is in the
//! crate docs), and serde impls for `Value`.

mod de;
mod error;
mod impls;
mod ser;

pub use self::{de::from_value, error::SerdeError, ser::to_value};
