//! Rust element types of numpy dtypes.

use crate::dtype::{DType, Kind};
use crate::error::{Error, ErrorKind};
use num_complex::Complex;

/// A Rust type that stands for a numpy dtype in the machine's byte order.
///
/// Implemented for `i8`..`i64`, `u8`..`u64`, `half::f16`, `f32`, `f64`,
/// `Complex<f32>`, `Complex<f64>` and [`Bool`].
pub trait Element: bytemuck::Pod + std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The dtype's kind.
    const KIND: Kind;
    /// The Rust type's name, for error messages.
    const RUST_NAME: &'static str;

    /// The dtype, in the machine's byte order.
    fn dtype() -> DType {
        DType::native(Self::KIND, std::mem::size_of::<Self>())
            .unwrap_or_else(|| DType::opaque("?", 0))
    }

    /// The element with its bytes reversed (each part of a complex separately).
    fn swap_bytes(self) -> Self;

    /// Whether `dtype` holds elements of this type (in either byte order).
    fn matches(dtype: &DType) -> bool {
        dtype.kind() == Self::KIND && dtype.item_size() == std::mem::size_of::<Self>()
    }
}

macro_rules! int_element {
    ($($t:ty => $kind:ident),*) => {$(
        impl Element for $t {
            const KIND: Kind = Kind::$kind;
            const RUST_NAME: &'static str = stringify!($t);
            fn swap_bytes(self) -> Self {
                <$t>::swap_bytes(self)
            }
        }
    )*};
}
int_element!(i8 => Int, i16 => Int, i32 => Int, i64 => Int, u8 => UInt, u16 => UInt, u32 => UInt, u64 => UInt);

macro_rules! float_element {
    ($($t:ty => $bits:ty),*) => {$(
        impl Element for $t {
            const KIND: Kind = Kind::Float;
            const RUST_NAME: &'static str = stringify!($t);
            fn swap_bytes(self) -> Self {
                <$t>::from_bits(self.to_bits().swap_bytes())
            }
        }
    )*};
}
float_element!(f32 => u32, f64 => u64, half::f16 => u16);

macro_rules! complex_element {
    ($($t:ty),*) => {$(
        impl Element for Complex<$t> {
            const KIND: Kind = Kind::Complex;
            const RUST_NAME: &'static str = concat!("Complex<", stringify!($t), ">");
            fn swap_bytes(self) -> Self {
                Complex::new(self.re.swap_bytes(), self.im.swap_bytes())
            }
        }
    )*};
}
complex_element!(f32, f64);

/// numpy's `bool` as the byte it is in a file: a byte that should be 0 or 1.
///
/// A `&[bool]` over file bytes would be undefined behaviour for any other
/// byte, so mapped boolean arrays hand out `Bool`s and [`Bool::get`] validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Bool(pub u8);

impl Bool {
    /// `True`.
    pub const TRUE: Bool = Bool(1);
    /// `False`.
    pub const FALSE: Bool = Bool(0);

    /// The value, or an error when the byte is neither 0 nor 1.
    pub fn get(self) -> Result<bool, Error> {
        match self.0 {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::unplaced(ErrorKind::InvalidBool(other))),
        }
    }
}

impl From<bool> for Bool {
    fn from(value: bool) -> Self {
        Bool(u8::from(value))
    }
}

impl Element for Bool {
    const KIND: Kind = Kind::Bool;
    const RUST_NAME: &'static str = "Bool";
    fn swap_bytes(self) -> Self {
        self
    }
}

/// An error unless `T` is the element of `dtype` (`offset`: where the array is, for the error).
pub(crate) fn check_element<T: Element>(dtype: &DType, offset: u64) -> Result<(), Error> {
    if T::matches(dtype) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::DTypeMismatch {
                dtype: dtype.name(),
                element: T::RUST_NAME,
            },
            offset,
        ))
    }
}

/// `value` swapped between the machine's byte order and the dtype's unless they agree.
pub(crate) fn in_byte_order<T: Element>(value: T, native: bool) -> T {
    if native {
        value
    } else {
        value.swap_bytes()
    }
}

/// The elements of `T` in `bytes` (in `dtype`'s byte order), copied and in the machine's.
pub(crate) fn elements<T: Element>(bytes: &[u8], dtype: &DType) -> Vec<T> {
    let native = dtype.is_native();
    bytes
        .chunks_exact(std::mem::size_of::<T>())
        .map(|chunk| in_byte_order(bytemuck::pod_read_unaligned(chunk), native))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each element type names the dtype numpy uses for it.
    #[test]
    fn element_dtypes() {
        assert_eq!(i8::dtype().name(), "int8");
        assert_eq!(u64::dtype().name(), "uint64");
        assert_eq!(half::f16::dtype().name(), "float16");
        assert_eq!(f64::dtype().name(), "float64");
        assert_eq!(Complex::<f32>::dtype().name(), "complex64");
        assert_eq!(Complex::<f64>::dtype().name(), "complex128");
        assert_eq!(Bool::dtype().name(), "bool");
        assert!(f64::matches(&DType::parse(">f8").unwrap()));
        assert!(!f64::matches(&DType::parse("<i8").unwrap()));
    }

    // Byte swapping reverses each part.
    #[test]
    fn swap() {
        assert_eq!(
            Element::swap_bytes(1.0f64).to_bits(),
            1.0f64.to_bits().swap_bytes()
        );
        let c = Complex::new(1.0f32, 2.0f32).swap_bytes();
        assert_eq!(c.im.to_bits(), 2.0f32.to_bits().swap_bytes());
        assert_eq!(Element::swap_bytes(0x0102u16), 0x0201);
    }

    // Only 0 and 1 are bools.
    #[test]
    fn bool_bytes() {
        assert_eq!(Bool(1).get(), Ok(true));
        assert_eq!(Bool(0).get(), Ok(false));
        assert_eq!(
            Bool(2).get().unwrap_err().kind(),
            &ErrorKind::InvalidBool(2)
        );
    }
}
