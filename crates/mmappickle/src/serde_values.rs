//! serde types stored as plain Python values: a derived struct is a `dict` for Python.

use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, MmapDict};
use mmappickle_codec::{from_value, to_value};

impl MmapDict {
    /// Stores `value` under `key` as the plain Python value serde describes (a struct is a
    /// `dict` with its fields as `str` keys, in order; see [`to_value`]).
    pub fn insert_serde<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), Error> {
        let value = to_value(value)?;
        self.insert(key, value)
    }

    /// The value of `key` read into a `T`, accepting what Python would naturally write for
    /// it (see [`from_value`]); a mismatch is [`ErrorKind::Serde`](crate::ErrorKind::Serde)
    /// naming the path from the key: `params.scan[3].gain: expected float, found str`.
    pub fn get_serde<T: DeserializeOwned>(&self, key: &str) -> Result<T, Error> {
        let value = self.value(key)?;
        from_value(&value).map_err(|error| Error::from(error.within_field(key)))
    }
}
