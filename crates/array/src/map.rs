//! Memory maps of array regions: the only module of this crate with `unsafe`.
//!
//! Each map covers exactly its array's raw bytes (memmap2 maps from the page
//! boundary below and hands out the region inside). The region is checked
//! against the file's length when the map is made; whether it stays there, and
//! whether anything else in the process maps the same bytes, the mapping
//! functions cannot know: they are `unsafe fn`s, as memmap2's own are.

#![allow(unsafe_code)]

use std::any::Any;
use std::fmt;
use std::fs::File;
use std::marker::PhantomData;
use std::ops::Range;

use memmap2::{Mmap, MmapMut, MmapOptions};

use crate::dtype::DType;
use crate::element::{check_element, elements, in_byte_order, Element};
use crate::error::{Error, ErrorKind};
use crate::expr::checked_raw_len;

/// Anything a caller attaches to a map to know when it is dropped (e.g. an `Arc<()>` it counts).
pub type KeepAlive = Box<dyn Any + Send + Sync>;

/// Checks that `data_offset .. + raw_len of (dtype, shape)` lies in `file`, and
/// returns the region's length as `usize`.
fn checked_region(
    file: &File,
    data_offset: u64,
    dtype: &DType,
    shape: &[usize],
) -> Result<usize, Error> {
    let raw_len =
        checked_raw_len(dtype, shape).ok_or(Error::new(ErrorKind::Overflow, data_offset))?;
    let end = data_offset
        .checked_add(raw_len)
        .ok_or(Error::new(ErrorKind::Overflow, data_offset))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(e, data_offset))?
        .len();
    if end > file_len {
        return Err(Error::new(
            ErrorKind::RegionOutOfFile { end, file_len },
            data_offset,
        ));
    }
    usize::try_from(raw_len).map_err(|_| Error::new(ErrorKind::Overflow, data_offset))
}

/// The methods [`MappedBytes`] and [`MappedBytesMut`] share: both hold `map`, `dtype`,
/// `shape`, `data_offset` and `keep_alive`, and differ only in the map's type.
macro_rules! raw_map_methods {
    () => {
        /// Attaches `token`, dropped with the map.
        pub fn with_keep_alive(mut self, token: KeepAlive) -> Self {
            self.keep_alive = Some(token);
            self
        }

        /// The raw bytes (C order, in the dtype's byte order).
        pub fn bytes(&self) -> &[u8] {
            &self.map
        }

        /// The dtype.
        pub fn dtype(&self) -> &DType {
            &self.dtype
        }

        /// The shape.
        pub fn shape(&self) -> &[usize] {
            &self.shape
        }

        /// The offset of the raw bytes in the file.
        pub fn data_offset(&self) -> u64 {
            self.data_offset
        }

        /// Number of elements.
        pub fn len(&self) -> usize {
            self.shape.iter().product()
        }

        /// Whether there are no elements.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// The elements as `T` (C order), copied, for any alignment and byte order: an
        /// error when `T` is not the dtype's element.
        pub fn to_vec<T: Element>(&self) -> Result<Vec<T>, Error> {
            check_element::<T>(&self.dtype, self.data_offset)?;
            Ok(elements(&self.map, &self.dtype))
        }

        /// Tells the kernel the bytes will be read at scattered places
        /// (`MADV_RANDOM`): a page fault then reads its own page, not a
        /// readahead window, so a strided look at a huge array reads what it
        /// looks at. A hint: the kernel may refuse it (an error) or ignore it.
        #[cfg(unix)]
        pub fn advise_random(&self) -> Result<(), Error> {
            self.map
                .advise(memmap2::Advice::Random)
                .map_err(|e| Error::io(e, self.data_offset))
        }
    };
}

/// A read-only map of an array's raw bytes, whatever its dtype (also dtypes
/// with no Rust element: strings, datetimes, structured).
pub struct MappedBytes {
    map: Mmap,
    dtype: DType,
    shape: Vec<usize>,
    data_offset: u64,
    keep_alive: Option<KeepAlive>,
}

impl MappedBytes {
    /// Maps the raw bytes of an array of `dtype` and `shape` at `data_offset` in `file`,
    /// read-only; the region is checked against the file's length now.
    ///
    /// # Safety
    ///
    /// For as long as the map lives: the region stays inside the file (no one
    /// truncates the file below its end, which would make a read fault with
    /// SIGBUS), and nothing in this process holds a writable map of the same
    /// bytes (a `&[u8]` must not alias a live `&mut [u8]`). Changes by other
    /// processes only change element values: every bit pattern is a valid
    /// element, as with memmap2's maps and `numpy.memmap`.
    pub unsafe fn map(
        file: &File,
        data_offset: u64,
        dtype: DType,
        shape: &[usize],
    ) -> Result<MappedBytes, Error> {
        let len = checked_region(file, data_offset, &dtype, shape)?;
        // SAFETY: memmap2's maps are unsafe because the file could shrink under
        // the map (SIGBUS) or its bytes be aliased by a writable reference. The
        // region was just checked to lie inside the file; that it stays there and
        // that no writable map of it lives in this process is this function's
        // own precondition (# Safety). Bit validity: a `Mmap` hands out `&[u8]`
        // only, and typed views cast with bytemuck to `Pod` elements, for which
        // every bit pattern (also one written meanwhile by another process) is
        // a valid value.
        let map = unsafe { MmapOptions::new().offset(data_offset).len(len).map(file) }
            .map_err(|e| Error::io(e, data_offset))?;
        Ok(MappedBytes {
            map,
            dtype,
            shape: shape.to_vec(),
            data_offset,
            keep_alive: None,
        })
    }

    raw_map_methods!();

    /// The same map, typed: an error when `T` is not the dtype's element.
    pub fn typed<T: Element>(self) -> Result<MappedArray<T>, Error> {
        check_element::<T>(&self.dtype, self.data_offset)?;
        Ok(MappedArray {
            raw: self,
            element: PhantomData,
        })
    }
}

/// A writable map of an array's raw bytes, whatever its dtype: writes go to
/// the file and are visible to other processes mapping it.
pub struct MappedBytesMut {
    map: MmapMut,
    dtype: DType,
    shape: Vec<usize>,
    data_offset: u64,
    keep_alive: Option<KeepAlive>,
}

impl MappedBytesMut {
    /// Maps the raw bytes of an array at `data_offset` in `file`, writable
    /// (shared). Fails when the file was opened read-only.
    ///
    /// # Safety
    ///
    /// For as long as the map lives: the region stays inside the file (no one
    /// truncates the file below its end), and nothing else in this process
    /// maps the same bytes (the `&mut [u8]` this map hands out must be the only
    /// reference to them). Changes by other processes only change element
    /// values: every bit pattern is a valid element.
    pub unsafe fn map(
        file: &File,
        data_offset: u64,
        dtype: DType,
        shape: &[usize],
    ) -> Result<MappedBytesMut, Error> {
        let len = checked_region(file, data_offset, &dtype, shape)?;
        // SAFETY: the region was just checked to lie inside the file; that it
        // stays there and that nothing else in this process maps these bytes
        // (so the `&mut [u8]` of `bytes_mut` is the only reference to them) is
        // this function's own precondition (# Safety). The map is shared, so
        // writes by other processes land in the same page cache: they only
        // change element values, and every bit pattern is a valid `Pod` element.
        let map = unsafe {
            MmapOptions::new()
                .offset(data_offset)
                .len(len)
                .map_mut(file)
        }
        .map_err(|e| Error::io(e, data_offset))?;
        Ok(MappedBytesMut {
            map,
            dtype,
            shape: shape.to_vec(),
            data_offset,
            keep_alive: None,
        })
    }

    raw_map_methods!();

    /// The raw bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// Writes the changed pages to the file and waits for it.
    pub fn flush(&self) -> Result<(), Error> {
        self.map.flush().map_err(|e| Error::io(e, self.data_offset))
    }

    /// The same map, typed: an error when `T` is not the dtype's element.
    pub fn typed<T: Element>(self) -> Result<MappedArrayMut<T>, Error> {
        check_element::<T>(&self.dtype, self.data_offset)?;
        Ok(MappedArrayMut {
            raw: self,
            element: PhantomData,
        })
    }
}

/// A slice of elements needs the machine's byte order (checked first) and `T`'s alignment.
fn check_native(dtype: &DType, offset: u64) -> Result<(), Error> {
    if dtype.is_native() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::NotNativeEndian(dtype.name()), offset))
    }
}

fn misaligned<T>(offset: u64) -> Error {
    Error::new(
        ErrorKind::Misaligned {
            align: std::mem::align_of::<T>(),
        },
        offset,
    )
}

fn slice_of<'a, T: Element>(bytes: &'a [u8], dtype: &DType, offset: u64) -> Result<&'a [T], Error> {
    check_native(dtype, offset)?;
    bytemuck::try_cast_slice(bytes).map_err(|_| misaligned::<T>(offset))
}

/// The byte range of element `index` of `T`, unless its end overflows.
fn element_range<T>(index: usize) -> Option<Range<usize>> {
    let size = std::mem::size_of::<T>();
    let start = index.checked_mul(size)?;
    Some(start..start.checked_add(size)?)
}

fn index_out_of_bounds<T>(bytes_len: usize, index: usize) -> Error {
    let len = bytes_len / std::mem::size_of::<T>().max(1);
    Error::unplaced(ErrorKind::IndexOutOfBounds { index, len })
}

fn element_at<T: Element>(bytes: &[u8], dtype: &DType, index: usize) -> Result<T, Error> {
    let chunk = element_range::<T>(index)
        .and_then(|range| bytes.get(range))
        .ok_or_else(|| index_out_of_bounds::<T>(bytes.len(), index))?;
    Ok(in_byte_order(
        bytemuck::pod_read_unaligned(chunk),
        dtype.is_native(),
    ))
}

/// The methods [`MappedArray`] and [`MappedArrayMut`] share: both wrap their untyped map
/// (`$raw`) in `raw`; `$map_doc` documents `map`.
macro_rules! typed_map_methods {
    ($raw:ident, $map_doc:literal) => {
        #[doc = $map_doc]
        ///
        /// # Safety
        ///
        #[doc = concat!("As for [`", stringify!($raw), "::map`].")]
        pub unsafe fn map(
            file: &File,
            data_offset: u64,
            dtype: DType,
            shape: &[usize],
        ) -> Result<Self, Error> {
            // Checked before mapping too: a wrong element type maps nothing.
            check_element::<T>(&dtype, data_offset)?;
            // SAFETY: the caller makes this function's promises, which are the same.
            unsafe { $raw::map(file, data_offset, dtype, shape) }?.typed()
        }

        /// Attaches `token`, dropped with the map.
        pub fn with_keep_alive(self, token: KeepAlive) -> Self {
            Self {
                raw: self.raw.with_keep_alive(token),
                element: PhantomData,
            }
        }

        /// The shape.
        pub fn shape(&self) -> &[usize] {
            self.raw.shape()
        }

        /// The dtype.
        pub fn dtype(&self) -> &DType {
            self.raw.dtype()
        }

        /// Number of elements.
        pub fn len(&self) -> usize {
            self.raw.len()
        }

        /// Whether there are no elements.
        pub fn is_empty(&self) -> bool {
            self.raw.is_empty()
        }

        /// The raw bytes.
        pub fn bytes(&self) -> &[u8] {
            self.raw.bytes()
        }

        /// The elements as a slice (C order): an error when the data is not
        /// aligned for `T` or not in the machine's byte order.
        pub fn as_slice(&self) -> Result<&[T], Error> {
            slice_of(self.raw.bytes(), self.raw.dtype(), self.raw.data_offset)
        }

        /// Element `index` (C order), for any alignment and byte order.
        pub fn get(&self, index: usize) -> Result<T, Error> {
            element_at(self.raw.bytes(), self.raw.dtype(), index)
        }

        /// All elements, copied, for any alignment and byte order.
        pub fn to_vec(&self) -> Vec<T> {
            elements(self.raw.bytes(), self.raw.dtype())
        }

        /// The untyped map.
        pub fn into_bytes(self) -> $raw {
            self.raw
        }

        /// An ndarray view (needs an aligned, native-endian map, as [`Self::as_slice`]).
        #[cfg(feature = "ndarray")]
        pub fn view(&self) -> Result<ndarray::ArrayViewD<'_, T>, Error> {
            let slice = self.as_slice()?;
            ndarray::ArrayViewD::from_shape(ndarray::IxDyn(self.shape()), slice)
                .map_err(|_| Error::new(ErrorKind::Overflow, self.raw.data_offset))
        }
    };
}

/// A read-only map of an array of `T`.
pub struct MappedArray<T: Element> {
    raw: MappedBytes,
    element: PhantomData<T>,
}

impl<T: Element> MappedArray<T> {
    typed_map_methods!(
        MappedBytes,
        "Maps the array of `dtype` (whose element must be `T`) and `shape` at `data_offset` in `file`."
    );
}

/// A writable map of an array of `T`: writes go to the file.
pub struct MappedArrayMut<T: Element> {
    raw: MappedBytesMut,
    element: PhantomData<T>,
}

impl<T: Element> MappedArrayMut<T> {
    typed_map_methods!(
        MappedBytesMut,
        "Maps the array writable; fails when the file was opened read-only."
    );

    /// The elements as a writable slice: an error when not aligned or not native-endian.
    pub fn as_slice_mut(&mut self) -> Result<&mut [T], Error> {
        let offset = self.raw.data_offset;
        check_native(self.raw.dtype(), offset)?;
        bytemuck::try_cast_slice_mut(self.raw.bytes_mut()).map_err(|_| misaligned::<T>(offset))
    }

    /// Sets element `index`, for any alignment and byte order.
    pub fn set(&mut self, index: usize, value: T) -> Result<(), Error> {
        let value = in_byte_order(value, self.raw.dtype().is_native());
        let bytes = self.raw.bytes_mut();
        let bytes_len = bytes.len();
        let chunk = element_range::<T>(index)
            .and_then(|range| bytes.get_mut(range))
            .ok_or_else(|| index_out_of_bounds::<T>(bytes_len, index))?;
        chunk.copy_from_slice(bytemuck::bytes_of(&value));
        Ok(())
    }

    /// Writes the changed pages to the file and waits for it.
    pub fn flush(&self) -> Result<(), Error> {
        self.raw.flush()
    }

    /// A writable ndarray view (needs an aligned, native-endian map).
    #[cfg(feature = "ndarray")]
    pub fn view_mut(&mut self) -> Result<ndarray::ArrayViewMutD<'_, T>, Error> {
        let shape = self.shape().to_vec();
        let offset = self.raw.data_offset;
        let slice = self.as_slice_mut()?;
        ndarray::ArrayViewMutD::from_shape(ndarray::IxDyn(&shape), slice)
            .map_err(|_| Error::new(ErrorKind::Overflow, offset))
    }
}

macro_rules! debug_map {
    ($($t:ident $(<$g:ident: Element>)?),*) => {$(
        impl$(<$g: Element>)? fmt::Debug for $t$(<$g>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("dtype", &self.dtype().name())
                    .field("shape", &self.shape())
                    .field("len_bytes", &self.bytes().len())
                    .finish()
            }
        }
    )*};
}
debug_map!(MappedBytes, MappedBytesMut, MappedArray<T: Element>, MappedArrayMut<T: Element>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::Bool;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        File::create(&path).unwrap().write_all(bytes).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        (dir, file)
    }

    // An aligned native map is a slice; a misaligned one is an error naming the
    // alignment, and get/to_vec work at any offset.
    #[test]
    fn aligned_and_misaligned() {
        let values: Vec<f64> = (0..10).map(|i| f64::from(i) * 1.5).collect();
        let mut bytes = vec![0u8; 8];
        bytes.extend_from_slice(bytemuck::cast_slice(&values));
        bytes.push(0);
        let (_dir, file) = file_with(&bytes);
        let f8 = DType::parse("float64").unwrap();
        let aligned = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<f64>::map(&file, 8, f8.clone(), &[2, 5]) }
        }
        .unwrap();
        assert_eq!(aligned.as_slice().unwrap(), &values[..]);
        assert_eq!(aligned.len(), 10);
        let mut shifted = vec![0u8; 3];
        shifted.extend_from_slice(bytemuck::cast_slice(&values));
        let (_dir2, file2) = file_with(&shifted);
        let misaligned = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<f64>::map(&file2, 3, f8, &[10]) }
        }
        .unwrap();
        assert_eq!(
            misaligned.as_slice().unwrap_err().kind(),
            &ErrorKind::Misaligned { align: 8 }
        );
        assert_eq!(misaligned.to_vec(), values);
        assert_eq!(misaligned.get(9).unwrap(), 13.5);
        assert!(matches!(
            misaligned.get(10).unwrap_err().kind(),
            ErrorKind::IndexOutOfBounds { index: 10, len: 10 }
        ));
    }

    // Big-endian data reads through get/to_vec; a slice is refused.
    #[test]
    fn other_byte_order() {
        let (_dir, file) = file_with(&[0, 0, 1, 2, 0, 0, 0, 3]);
        let dtype = DType::parse(">i4").unwrap();
        let big = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<i32>::map(&file, 0, dtype, &[2]) }
        }
        .unwrap();
        let expected = if cfg!(target_endian = "little") {
            vec![0x102, 3]
        } else {
            vec![0x0201_0000, 0x0300_0000]
        };
        assert_eq!(big.to_vec(), expected);
        assert!(matches!(
            big.as_slice().unwrap_err().kind(),
            ErrorKind::NotNativeEndian(_)
        ));
    }

    // A region past the file's end, or the wrong element type, is refused.
    #[test]
    fn refused_maps() {
        let (_dir, file) = file_with(&[0; 16]);
        let f8 = DType::parse("float64").unwrap();
        let err = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedBytes::map(&file, 8, f8.clone(), &[2]) }
        }
        .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::RegionOutOfFile {
                end: 24,
                file_len: 16
            }
        );
        let err = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<i64>::map(&file, 0, f8.clone(), &[2]) }
        }
        .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::DTypeMismatch { .. }));
        let err = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedBytes::map(&file, u64::MAX, f8, &[2]) }
        }
        .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::Overflow);
    }

    // Writes through a mutable map reach the file; a read-only file refuses a writable map.
    #[test]
    fn writes_reach_the_file() {
        let (dir, file) = file_with(&[0; 12]);
        let mut map = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArrayMut::<Bool>::map(&file, 2, DType::parse("bool").unwrap(), &[3, 2]) }
        }
        .unwrap();
        map.as_slice_mut().unwrap()[1] = Bool::TRUE;
        map.set(5, Bool::TRUE).unwrap();
        map.flush().unwrap();
        drop(map);
        let on_disk = std::fs::read(dir.path().join("data")).unwrap();
        assert_eq!(on_disk, [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        let read_only = File::open(dir.path().join("data")).unwrap();
        let err = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedBytesMut::map(&read_only, 0, DType::parse("uint8").unwrap(), &[4]) }
        }
        .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io { .. }));
        let ro = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<u8>::map(&read_only, 0, DType::parse("uint8").unwrap(), &[4]) }
        }
        .unwrap();
        assert_eq!(ro.to_vec(), [0, 0, 0, 1]);
    }

    // An empty array maps to an empty slice, even at the file's end.
    #[test]
    fn empty_map() {
        let (_dir, file) = file_with(&[1, 2, 3]);
        let empty = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<u64>::map(&file, 3, DType::parse("uint64").unwrap(), &[0, 4]) }
        }
        .unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.to_vec(), Vec::<u64>::new());
    }

    // The keep-alive token lives exactly as long as the map.
    #[test]
    fn keep_alive() {
        let (_dir, file) = file_with(&[0; 8]);
        let token = std::sync::Arc::new(());
        let map = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedBytes::map(&file, 0, DType::parse("uint8").unwrap(), &[8]) }
        }
        .unwrap()
        .with_keep_alive(Box::new(token.clone()));
        assert_eq!(std::sync::Arc::strong_count(&token), 2);
        drop(map);
        assert_eq!(std::sync::Arc::strong_count(&token), 1);
    }

    // With the `ndarray` feature, maps are ndarray views of the right shape.
    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_views() {
        let values: Vec<i32> = (0..6).collect();
        let (_dir, file) = file_with(bytemuck::cast_slice(&values));
        let dtype = DType::parse("int32").unwrap();
        let mut map = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArrayMut::<i32>::map(&file, 0, dtype.clone(), &[2, 3]) }
        }
        .unwrap();
        map.view_mut().unwrap()[[1, 2]] = 50;
        assert_eq!(map.view().unwrap()[[1, 0]], 3);
        drop(map);
        let view_source = {
            // SAFETY: a private temporary file that nothing shrinks, with no other map of these bytes alive.
            unsafe { MappedArray::<i32>::map(&file, 0, dtype, &[2, 3]) }
        }
        .unwrap();
        let view = view_source.view().unwrap();
        assert_eq!(view.shape(), &[2, 3]);
        assert_eq!(view[[1, 2]], 50);
    }
}
