//! Value kinds the dict dispatches through: the Rust counterpart of the Python library's
//! picklers (`mmappickle.picklers.BasePickler`). A [`Pickler`] says which stored values it
//! reads ([`Pickler::is_valid`]) and which values it stores ([`Pickler::is_picklable`]); the
//! dict tries its picklers in decreasing [`Pickler::priority`], as the library does. The
//! built-in kinds ([`GenericPickler`], [`ArrayPickler`], [`MaskedArrayPickler`]) are picklers
//! like any other, and a kind of one's own joins them through
//! [`MmapDictOptions::picklers`](crate::MmapDictOptions::picklers).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use mmappickle_array::{OwnedArray, OwnedMasked};
use mmappickle_codec::Value;

use crate::dict::{StoredValue, Transaction};
use crate::error::{Error, ErrorKind};
use crate::item::{ArrayData, Item, Located, MaskedBytes};

/// A kind of value: how values of it are recognised in the file and read, and which values
/// it stores and how: see the crate docs (*What a key holds*) and
/// [`MmapDict::insert_any`](crate::MmapDict::insert_any).
/// A binding that needs to tell the picklers apart upcasts to `&dyn Any` and downcasts.
///
/// A kind of one's own, storing a `(u32, u32)` pair as a Python tuple of two ints in a form
/// of its own (`MARK`, two `BININT`s, `TUPLE`: Python reads an ordinary tuple; `pickle`
/// itself writes `TUPLE2` instead):
///
/// ```
/// use std::any::Any;
/// use std::sync::Arc;
/// use mmappickle::{Error, Item, MmapDict, Pickler, StoredValue, Transaction, Value};
///
/// #[derive(Debug)]
/// struct PairPickler;
///
/// impl Pickler for PairPickler {
///     fn name(&self) -> &str { "PairPickler" }
///     fn priority(&self) -> i32 { 50 }
///     fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, Error> {
///         Ok(value.bytes().starts_with(b"(J") && value.bytes().ends_with(b"t"))
///     }
///     fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
///         let Value::Tuple(items) = value.decode()? else { unreachable!("checked") };
///         let [Value::Int(a), Value::Int(b)] = &items[..] else { unreachable!("checked") };
///         Ok(Item::other(self.name(), (*a as u32, *b as u32)))
///     }
///     fn is_picklable(&self, value: &dyn Any) -> bool { value.is::<(u32, u32)>() }
///     fn write(&self, key: &str, value: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error> {
///         let (a, b) = *value.downcast_ref::<(u32, u32)>().expect("is_picklable");
///         tx.insert_pickle(key, &[b"\x80\x04(J".as_slice(), &a.to_le_bytes(), b"J",
///                                 &b.to_le_bytes(), b"t.".as_slice()].concat())
///     }
/// }
///
/// let dir = tempfile::tempdir()?;
/// let picklers = MmapDict::builtin_picklers().into_iter().chain([Arc::new(PairPickler) as _]);
/// let mut m = MmapDict::options().picklers(picklers).open(dir.path().join("pairs.mmdpickle"))?;
/// m.insert_any("size", &(640u32, 480u32))?;
/// m.insert_any("name", &Value::from("camera"))?;     // the generic kind stores a Value
/// let size = m.get("size")?;
/// assert_eq!(size.as_other().and_then(|o| o.downcast_ref::<(u32, u32)>()), Some(&(640, 480)));
/// assert_eq!(m.get("name")?, Value::from("camera"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Pickler: Any + fmt::Debug + Send + Sync {
    /// The kind's name, for errors and for [`OtherValue::pickler`].
    fn name(&self) -> &str;

    /// Picklers are tried in decreasing priority (the library's: generic -100, arrays 100).
    fn priority(&self) -> i32;

    /// Whether this kind reads `value` (the library's `is_valid(offset, length)`).
    fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, Error>;

    /// Reads `value`, which [`Pickler::is_valid`] accepted (the library's `read`).
    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error>;

    /// Whether this kind stores `value` (the library's `is_picklable(obj)`).
    fn is_picklable(&self, value: &dyn Any) -> bool;

    /// Stores `value`, which [`Pickler::is_picklable`] accepted, as the entry `key` of the
    /// batch `tx` (the library's `write`): with any of the batch's inserts, such as
    /// [`Transaction::insert_written`], whose bytes are checked before the commit.
    fn write(&self, key: &str, value: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error>;
}

/// A value read by a pickler of one's own ([`Item::Other`]).
pub struct OtherValue {
    pickler: String,
    value: Box<dyn Any + Send + Sync>,
}

impl OtherValue {
    /// The name of the pickler that read it.
    pub fn pickler(&self) -> &str {
        &self.pickler
    }

    /// The value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.value.downcast_ref()
    }

    /// The value, if it is a `T`; else `self` back.
    pub fn downcast<T: Any>(self) -> Result<T, OtherValue> {
        match self.value.downcast() {
            Ok(value) => Ok(*value),
            Err(value) => Err(OtherValue {
                pickler: self.pickler,
                value,
            }),
        }
    }
}

impl fmt::Debug for OtherValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtherValue {{ pickler: {:?}, .. }}", self.pickler)
    }
}

impl Item {
    /// An [`Item::Other`] read by the pickler `pickler`.
    pub fn other(pickler: &str, value: impl Any + Send + Sync) -> Item {
        Item::Other(OtherValue {
            pickler: pickler.to_owned(),
            value: Box::new(value),
        })
    }
}

/// Generic values: decoded as [`Value`]s, stored from a [`Value`]. The catch-all reader, as
/// in the library (priority -100): an array that no array pickler reads is decoded as the
/// value its pickle describes.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenericPickler;

impl Pickler for GenericPickler {
    fn name(&self) -> &str {
        "GenericPickler"
    }

    fn priority(&self) -> i32 {
        -100
    }

    fn is_valid(&self, _: &StoredValue<'_>) -> Result<bool, Error> {
        Ok(true)
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
        value.decode().map(Item::Value)
    }

    fn is_picklable(&self, value: &dyn Any) -> bool {
        value.is::<Value>()
    }

    fn write(&self, key: &str, value: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error> {
        tx.insert(key, expect::<Value>(self, value)?.clone())
    }
}

/// numpy arrays: mapped, stored from an [`OwnedArray`] (priority 100).
#[derive(Debug, Clone, Copy, Default)]
pub struct ArrayPickler;

impl Pickler for ArrayPickler {
    fn name(&self) -> &str {
        "ArrayPickler"
    }

    fn priority(&self) -> i32 {
        100
    }

    fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, Error> {
        Ok(matches!(value.located(), Located::Array(_)))
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
        match value.located() {
            Located::Array(place) => Ok(Item::Array(ArrayData::Mapped(
                value.map_array(place.clone())?,
            ))),
            _ => Err(refused(self, value.offset())),
        }
    }

    fn is_picklable(&self, value: &dyn Any) -> bool {
        value.is::<OwnedArray>()
    }

    fn write(&self, key: &str, value: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error> {
        let array = expect::<OwnedArray>(self, value)?;
        tx.insert_array_bytes(key, &array.dtype, &array.shape, &array.data)
    }
}

/// `numpy.ma.MaskedArray`s: data and mask mapped, stored from an [`OwnedMasked`]
/// (priority 100).
#[derive(Debug, Clone, Copy, Default)]
pub struct MaskedArrayPickler;

impl Pickler for MaskedArrayPickler {
    fn name(&self) -> &str {
        "MaskedArrayPickler"
    }

    fn priority(&self) -> i32 {
        100
    }

    fn is_valid(&self, value: &StoredValue<'_>) -> Result<bool, Error> {
        Ok(matches!(value.located(), Located::Masked { .. }))
    }

    fn read(&self, value: &StoredValue<'_>) -> Result<Item, Error> {
        match value.located() {
            Located::Masked { data, mask } => Ok(Item::Masked(MaskedBytes {
                data: ArrayData::Mapped(value.map_array(data.clone())?),
                mask: ArrayData::Mapped(value.map_array(mask.clone())?),
            })),
            _ => Err(refused(self, value.offset())),
        }
    }

    fn is_picklable(&self, value: &dyn Any) -> bool {
        value.is::<OwnedMasked>()
    }

    fn write(&self, key: &str, value: &dyn Any, tx: &mut Transaction<'_>) -> Result<(), Error> {
        let masked = expect::<OwnedMasked>(self, value)?;
        let (data, mask) = (&masked.data, &masked.mask);
        let elements: usize = data.shape.iter().product();
        let mask_bytes = match &mask.data[..] {
            // No mask (0-d, as the library writes it): stored as an all-equal mask.
            [flag] if mask.shape.is_empty() => vec![*flag; elements],
            bytes => bytes.to_vec(),
        };
        tx.insert_masked_bytes(key, &data.dtype, &data.shape, &data.data, &mask_bytes)
    }
}

/// `value` as a `T`, which the pickler's `is_picklable` promised.
fn expect<'v, T: Any>(pickler: &dyn Pickler, value: &'v dyn Any) -> Result<&'v T, Error> {
    let refused = ErrorKind::PicklerRefused {
        pickler: pickler.name().to_owned(),
    };
    value.downcast_ref().ok_or_else(|| Error::unplaced(refused))
}

/// The error of a built-in pickler asked to read a value it does not hold.
fn refused(pickler: &dyn Pickler, value_offset: u64) -> Error {
    let pickler = pickler.name().to_owned();
    Error::new(ErrorKind::PicklerRefused { pickler }, value_offset)
}

/// The picklers of a dict, in the order they are tried: decreasing priority, ties in the
/// order given.
#[derive(Debug, Clone)]
pub(crate) struct Picklers {
    list: Arc<[Arc<dyn Pickler>]>,
    /// See [`Picklers::generic_reads_builtin`].
    generic_reads_builtin: bool,
}

impl Picklers {
    pub(crate) fn new(picklers: impl IntoIterator<Item = Arc<dyn Pickler>>) -> Picklers {
        let mut picklers: Vec<_> = picklers.into_iter().collect();
        picklers.sort_by_key(|pickler| std::cmp::Reverse(pickler.priority()));
        let generic_reads_builtin =
            picklers.iter().all(is_builtin) && picklers.iter().any(is_generic);
        Picklers {
            list: picklers.into(),
            generic_reads_builtin,
        }
    }

    pub(crate) fn builtin() -> Vec<Arc<dyn Pickler>> {
        vec![
            Arc::new(ArrayPickler),
            Arc::new(MaskedArrayPickler),
            Arc::new(GenericPickler),
        ]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<dyn Pickler>> {
        self.list.iter()
    }

    /// Whether the first pickler valid for a generic value (no array) is the built-in
    /// [`GenericPickler`], whatever the file holds: only built-in picklers are listed, the
    /// generic one among them (the array ones are valid for arrays only).
    pub(crate) fn generic_reads_builtin(&self) -> bool {
        self.generic_reads_builtin
    }

    /// The first pickler valid for `value`.
    pub(crate) fn reader_of(&self, value: &StoredValue<'_>) -> Result<&dyn Pickler, Error> {
        for pickler in self.iter() {
            if pickler.is_valid(value)? {
                return Ok(&**pickler);
            }
        }
        Err(Error::new(
            ErrorKind::NoPickler {
                key: value.key().to_owned(),
                reading: true,
            },
            value.offset(),
        ))
    }

    /// The first pickler that stores `value`.
    pub(crate) fn writer_of(&self, key: &str, value: &dyn Any) -> Result<&Arc<dyn Pickler>, Error> {
        self.iter()
            .find(|pickler| pickler.is_picklable(value))
            .ok_or_else(|| {
                Error::unplaced(ErrorKind::NoPickler {
                    key: key.to_owned(),
                    reading: false,
                })
            })
    }
}

/// Whether `pickler` is the built-in [`GenericPickler`].
fn is_generic(pickler: &Arc<dyn Pickler>) -> bool {
    let kind: &dyn Any = &**pickler;
    kind.is::<GenericPickler>()
}

/// Whether `pickler` is one of the built-in picklers.
fn is_builtin(pickler: &Arc<dyn Pickler>) -> bool {
    let kind: &dyn Any = &**pickler;
    is_generic(pickler) || kind.is::<ArrayPickler>() || kind.is::<MaskedArrayPickler>()
}

impl Default for Picklers {
    fn default() -> Self {
        Picklers::new(Picklers::builtin())
    }
}
