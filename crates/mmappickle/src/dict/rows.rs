//! Writing rows of an array entry with positioned writes (`pwrite`) into the file: no map,
//! so no page fault per page of a stub's hole, under the file's shared lock, so that no
//! vacuum and no replace of the key (both take the exclusive lock) runs meanwhile.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use mmappickle_array::{checked_raw_len, DType, Element};
use mmappickle_container::Durability;

use super::maps::Claim;
use super::MmapDict;
use crate::error::{Error, ErrorKind};
use crate::item::ArrayPlace;

/// Values of a typed write into an array of the other byte order are swapped through a
/// buffer of this many bytes.
const SWAP_BUFFER_LEN: usize = 1 << 20;

impl MmapDict {
    /// Writes `rows` (elements of `T`, C order, whole rows of the array's first axis) into
    /// the plain array of `key`, from row `start_row` on, with positioned writes into the
    /// file (`pwrite`): the rows of a stub are written without faulting its hole page by page
    /// as a map does, and only the pages written take disk space. An array of the other byte
    /// order gets the values swapped.
    ///
    /// The write holds the file's shared lock, so it never races a vacuum or a replace of
    /// the key (by any handle or process: they take the exclusive lock), and the dict's
    /// [`Durability`] applies (`Flush` syncs the data before returning). Writes of several
    /// threads or processes run side by side; as with maps, writers of the same rows
    /// coordinate themselves.
    ///
    /// Refused: [`ErrorKind::ReadOnly`]; [`ErrorKind::NotAnArray`] for a key that holds
    /// anything but a plain array; [`ErrorKind::WrongElementType`] for an array of another
    /// dtype; [`ErrorKind::BufferLength`] when `rows` is not a whole number of rows;
    /// [`ErrorKind::RowsOutOfRange`] past the array's end (or for a 0-d array, which has no
    /// rows); [`ErrorKind::MapConflict`] while a map of the array handed out in this process
    /// lives (its bytes would change under it). A refused write changes nothing. Reads of
    /// the array's bytes under way in other threads (a decode, a copy) are waited for, and
    /// wait for the write in turn.
    ///
    /// ```
    /// use mmappickle::{EmptyArray, ErrorKind, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("rows.mmdpickle"))?;
    /// m.insert_stub("grid", EmptyArray::new::<f32>(&[1000, 3]))?;
    /// m.write_rows("grid", 998, &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?; // the last two rows
    /// assert_eq!(m.array::<f32>("grid")?.get(2999)?, 6.0);
    /// let past_the_end = m.write_rows("grid", 999, &[0.0f32; 6]).unwrap_err();
    /// assert!(matches!(past_the_end.kind(), ErrorKind::RowsOutOfRange { .. }));
    /// # Ok::<(), mmappickle::Error>(())
    /// ```
    pub fn write_rows<T: Element>(
        &self,
        key: &str,
        start_row: usize,
        rows: &[T],
    ) -> Result<(), Error> {
        let raw: &[u8] = bytemuck::cast_slice(rows);
        let check = |dtype: &DType, value_offset: u64| {
            if T::matches(dtype) {
                return Ok(());
            }
            let kind = ErrorKind::WrongElementType {
                key: key.to_owned(),
                requested: T::RUST_NAME,
                dtype: dtype.name(),
            };
            Err(Error::new(kind, value_offset))
        };
        self.write_rows_checked(key, start_row, raw.len(), check, |file, place| {
            if place.dtype.is_native() {
                return file.write_all_at(raw, place.data_offset);
            }
            let mut offset = place.data_offset;
            let mut swapped = Vec::with_capacity(rows.len().min(swap_buffer_elements::<T>()));
            for piece in rows.chunks(swap_buffer_elements::<T>()) {
                swapped.clear();
                swapped.extend(piece.iter().map(|value| value.swap_bytes()));
                let bytes: &[u8] = bytemuck::cast_slice(&swapped);
                file.write_all_at(bytes, offset)?;
                offset += bytes.len() as u64;
            }
            Ok(())
        })
    }

    /// As [`MmapDict::write_rows`], from raw bytes of `dtype` (C order, in the dtype's byte
    /// order): [`ErrorKind::WrongDType`] when the array's dtype is not `dtype`.
    ///
    /// ```
    /// use mmappickle::{DType, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("rows_bytes.mmdpickle"))?;
    /// m.insert_array("names", &[0u8; 8], &[2, 4])?;
    /// m.write_rows_bytes("names", 1, &DType::parse("uint8")?, b"abcd")?;
    /// assert_eq!(m.array::<u8>("names")?.to_vec(), b"\0\0\0\0abcd");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_rows_bytes(
        &self,
        key: &str,
        start_row: usize,
        dtype: &DType,
        raw: &[u8],
    ) -> Result<(), Error> {
        self.write_rows_in_place(key, start_row, dtype, raw.len(), |file, offset, _| {
            file.write_all_at(raw, offset)
        })
    }

    /// As [`MmapDict::write_rows_bytes`], the bytes written by `write_raw` itself (for
    /// bindings that write from a buffer of their own, with no copy through this crate): it
    /// is called once, under the lock and the checks of `write_rows`, with the file, the
    /// offset of the first row's bytes and their length (`len`, the length of the rows), and
    /// writes within that range only (bytes it leaves keep their value: a binding may write
    /// a block that cuts the rows as the runs it covers). An error of its own is the write's
    /// error, at that offset. It must not use the dict: a read of the array from it is
    /// refused, and other reads could wait for each other.
    ///
    /// ```
    /// use std::os::unix::fs::FileExt;
    /// use mmappickle::{DType, MmapDict};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut m = MmapDict::open(dir.path().join("rows_in_place.mmdpickle"))?;
    /// m.insert_array("a", &[0i16; 6], &[3, 2])?;
    /// let row: [i16; 2] = [7, -7];
    /// m.write_rows_in_place("a", 2, &DType::parse("int16")?, 4, |file, offset, len| {
    ///     assert_eq!(len, 4);
    ///     file.write_all_at(bytemuck::cast_slice(&row), offset)
    /// })?;
    /// assert_eq!(m.array::<i16>("a")?.to_vec(), [0, 0, 0, 0, 7, -7]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_rows_in_place(
        &self,
        key: &str,
        start_row: usize,
        dtype: &DType,
        len: usize,
        write_raw: impl FnOnce(&File, u64, u64) -> io::Result<()>,
    ) -> Result<(), Error> {
        let check = |found: &DType, value_offset: u64| {
            if found == dtype {
                return Ok(());
            }
            let kind = ErrorKind::WrongDType {
                key: key.to_owned(),
                given: dtype.name(),
                dtype: found.name(),
            };
            Err(Error::new(kind, value_offset))
        };
        self.write_rows_checked(key, start_row, len, check, |file, place| {
            write_raw(file, place.data_offset, place.raw_len())
        })
    }

    /// The one path of every write of rows: under a read snapshot (the shared lock), the
    /// live plain array of `key`, its dtype accepted by `check_dtype`, the rows that `len`
    /// bytes from `start_row` cover, a claim for positioned writes on the array; then
    /// `write` of those rows' place, and a sync when the dict's durability asks for one.
    fn write_rows_checked(
        &self,
        key: &str,
        start_row: usize,
        len: usize,
        check_dtype: impl FnOnce(&DType, u64) -> Result<(), Error>,
        write: impl FnOnce(&File, &ArrayPlace) -> io::Result<()>,
    ) -> Result<(), Error> {
        self.check_writable()?;
        let snapshot = self.read()?;
        let entry = snapshot.entry(key)?;
        let value_offset = entry.value_offset();
        let array = snapshot
            .locate_entry(entry)?
            .into_array(key, value_offset)?;
        check_dtype(&array.dtype, value_offset)?;
        let rows = rows_covered(&array, start_row, len)?;
        let file = snapshot.view()?.file();
        let _claim = Claim::positioned_write(file, key, value_offset, &self.maps)?;
        let at = rows.data_offset;
        write(file, &rows).map_err(|error| Error::new(ErrorKind::Io(error), at))?;
        if self.options.durability == Durability::Flush {
            file.sync_data()
                .map_err(|error| Error::new(ErrorKind::Io(error), at))?;
        }
        Ok(())
    }
}

/// The rows of `array` that `len` bytes written from row `start_row` cover: whole rows
/// ([`ErrorKind::BufferLength`] otherwise) inside the array ([`ErrorKind::RowsOutOfRange`]
/// otherwise; a 0-d array has no rows).
fn rows_covered(array: &ArrayPlace, start_row: usize, len: usize) -> Result<ArrayPlace, Error> {
    let out_of_range = |n_rows| {
        let rows = start_row..start_row.saturating_add(n_rows);
        let n_rows = array.shape.first().copied().unwrap_or(0);
        Error::unplaced(ErrorKind::RowsOutOfRange { rows, n_rows })
    };
    let Some(row_shape) = array.shape.get(1..) else {
        return Err(out_of_range(0));
    };
    // Within the array, whose raw length was checked against the file.
    let row_len = checked_raw_len(&array.dtype, row_shape).unwrap_or(0);
    let (n_rows, whole) = match usize::try_from(row_len) {
        Ok(0) | Err(_) => (0, len == 0),
        Ok(row_len) => (len / row_len, len % row_len == 0),
    };
    if !whole {
        let expected = n_rows as u64 * row_len;
        return Err(Error::unplaced(ErrorKind::BufferLength {
            expected,
            found: len,
        }));
    }
    let end = start_row
        .checked_add(n_rows)
        .ok_or_else(|| out_of_range(n_rows))?;
    array.rows(start_row..end)
}

/// How many elements of `T` fill the swap buffer.
fn swap_buffer_elements<T>() -> usize {
    (SWAP_BUFFER_LEN / std::mem::size_of::<T>().max(1)).max(1)
}
