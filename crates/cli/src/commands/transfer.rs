//! Arrays in and out: `import-npy`, `import-npz`, `export-npy`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use mmappickle::Kind;
use mmappickle::{ArrayData, ArrayEncoding, DType, Item, MmapDict, OwnedArray};

use super::CHUNK;
use crate::error::{CliError, CliResult};
use crate::npy::{self, NpyHeader};
use crate::progress;
use crate::store::{self, ReadDict};

/// The dtype of a `.npy` header, refusing what cannot be mapped.
fn npy_dtype(header: &NpyHeader) -> CliResult<DType> {
    let dtype = DType::parse(&header.descr).ok();
    let Some(dtype) = dtype.filter(|dtype| dtype.is_writable() && dtype.kind() != Kind::Other)
    else {
        return Err(CliError::new(format!(
            "dtype {:?} cannot be stored as a memory-mapped array \
             (object and structured arrays are not supported)",
            header.descr
        )));
    };
    Ok(dtype)
}

/// Copies `len` bytes from `reader` to `emit` in chunks, counting on `bar`.
fn copy_chunks(
    reader: &mut dyn Read,
    len: u64,
    emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    bar: &indicatif::ProgressBar,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut left = len;
    while left > 0 {
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        reader.read_exact(&mut buf[..n]).map_err(|err| {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::other(format!(
                    "the .npy data ends {left} bytes early (truncated file?)"
                ))
            } else {
                err
            }
        })?;
        emit(&buf[..n])?;
        left -= n as u64;
        bar.inc(n as u64);
    }
    Ok(())
}

/// Fortran-ordered data of `len` bytes, read item by item at byte offsets.
trait ItemSource {
    /// Fills `item` with the bytes at `offset`.
    fn read_item(&mut self, offset: usize, item: &mut [u8]) -> io::Result<()>;
}

impl ItemSource for &[u8] {
    fn read_item(&mut self, offset: usize, item: &mut [u8]) -> io::Result<()> {
        let bytes = offset
            .checked_add(item.len())
            .and_then(|end| self.get(offset..end))
            .ok_or_else(|| io::Error::other("array data shorter than its shape"))?;
        item.copy_from_slice(bytes);
        Ok(())
    }
}

/// A region of a file read through a window of [`CHUNK`] bytes with positioned reads (no
/// map: its soundness would depend on nobody shrinking the file).
struct FileWindow<'f> {
    file: &'f File,
    start: u64,
    window: Vec<u8>,
    window_offset: usize,
}

impl ItemSource for FileWindow<'_> {
    fn read_item(&mut self, offset: usize, item: &mut [u8]) -> io::Result<()> {
        let end = offset + item.len();
        if offset < self.window_offset || end > self.window_offset + self.window.len() {
            self.window.resize(CHUNK.max(item.len()), 0);
            let at = self.start + offset as u64;
            let read = read_up_to(self.file, &mut self.window, at)?;
            self.window.truncate(read);
            self.window_offset = offset;
        }
        let bytes = self
            .window
            .get(offset - self.window_offset..end - self.window_offset)
            .ok_or_else(|| io::Error::other("array data shorter than its shape"))?;
        item.copy_from_slice(bytes);
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes at `offset` (fewer only at the end of the file).
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Emits `len` bytes of Fortran-ordered data in C order, a chunk at a time.
fn fortran_to_c(
    src: &mut dyn ItemSource,
    len: usize,
    shape: &[usize],
    item_size: usize,
    emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    bar: &indicatif::ProgressBar,
) -> io::Result<()> {
    if len == 0 || item_size == 0 {
        return Ok(());
    }
    // Fortran strides: the first axis varies fastest.
    let mut strides = Vec::with_capacity(shape.len());
    let mut stride = item_size;
    for &extent in shape {
        strides.push(stride);
        stride = stride.saturating_mul(extent);
    }
    let mut index = vec![0usize; shape.len()];
    let mut src_offset = 0usize;
    let mut chunk = Vec::with_capacity(CHUNK.min(len));
    let mut item = vec![0u8; item_size];
    let n_items = len / item_size;
    for _ in 0..n_items {
        src.read_item(src_offset, &mut item)?;
        chunk.extend_from_slice(&item);
        if chunk.len() >= CHUNK {
            emit(&chunk)?;
            bar.inc(chunk.len() as u64);
            chunk.clear();
        }
        // Next C-order index: the last axis varies fastest.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            src_offset += strides[axis];
            if index[axis] < shape[axis] {
                break;
            }
            src_offset -= strides[axis] * shape[axis];
            index[axis] = 0;
        }
    }
    emit(&chunk)?;
    bar.inc(chunk.len() as u64);
    Ok(())
}

/// Whether the data's order differs from C order: Fortran order with more
/// than one axis longer than 1 (otherwise both orders are the same bytes).
fn needs_reordering(header: &NpyHeader) -> bool {
    header.fortran_order && header.shape.iter().filter(|&&extent| extent > 1).count() > 1
}

/// The shape as `usize`s, refusing dimensions this machine cannot address.
fn usize_shape(shape: &[u64]) -> CliResult<Vec<usize>> {
    shape
        .iter()
        .map(|&n| usize::try_from(n))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))
}

/// `import-npy`: a `.npy` file streamed into a new aligned array entry.
pub(super) fn import_npy(
    path: &Path,
    key: &str,
    npy_path: &Path,
    encoding: ArrayEncoding,
) -> CliResult {
    let in_npy = |err: CliError| err.context(npy_path.display());
    let npy_file = File::open(npy_path).map_err(|err| in_npy(err.into()))?;
    let mut reader = BufReader::with_capacity(CHUNK, &npy_file);
    let header = npy::read_header(&mut reader).map_err(|err| in_npy(err.into()))?;
    let dtype = npy_dtype(&header).map_err(in_npy)?;
    let layout = store::layout(&dtype, &header.shape, encoding)?;
    let raw_len = layout.raw_len();
    let npy_len = npy_file.metadata()?.len();
    if header.data_offset.saturating_add(raw_len) > npy_len {
        return Err(in_npy(CliError::new(format!(
            "the .npy data is {} bytes, but dtype {} and shape {} need {raw_len}",
            npy_len.saturating_sub(header.data_offset),
            header.descr,
            npy::python_tuple_repr(&header.shape)
        ))));
    }
    let shape = usize_shape(&header.shape)?;
    let mut dict = store::open_dict(path, encoding)?;
    let bar = progress::bytes_bar(raw_len, &format!("importing {key}"));
    let result = if needs_reordering(&header) && raw_len > 0 {
        // Read the source at the offsets of C order, through a window.
        let len = usize::try_from(raw_len)
            .map_err(|_| CliError::new("the array does not fit in memory addresses"))?;
        let mut source = FileWindow {
            file: &npy_file,
            start: header.data_offset,
            window: Vec::new(),
            window_offset: 0,
        };
        dict.insert_array_with(key, &dtype, &shape, |emit| {
            fortran_to_c(&mut source, len, &shape, dtype.item_size(), emit, &bar)
        })
    } else {
        // Copied inside the kernel, file to file: at the speed of `cp`, in constant memory.
        let copied = dict.insert_array_copy(key, &dtype, &shape, &npy_file, header.data_offset);
        bar.inc(raw_len);
        copied
    };
    bar.finish_and_clear();
    Ok(result?)
}

/// `import-npz`: every `.npy` member of an archive, one entry each.
pub(super) fn import_npz(
    path: &Path,
    npz_path: &Path,
    encoding: ArrayEncoding,
    out: &mut dyn Write,
) -> CliResult {
    let in_npz = |err: CliError| err.context(npz_path.display());
    let archive_file = File::open(npz_path).map_err(|err| in_npz(err.into()))?;
    let mut archive =
        zip::ZipArchive::new(BufReader::new(archive_file)).map_err(|err| in_npz(err.into()))?;
    let mut dict = store::open_dict(path, encoding)?;
    for member_idx in 0..archive.len() {
        let mut member = archive
            .by_index(member_idx)
            .map_err(|err| in_npz(err.into()))?;
        let name = member.name().to_owned();
        let in_member =
            |err: CliError| err.context(format!("{}: member {name:?}", npz_path.display()));
        let Some(key) = name.strip_suffix(".npy") else {
            writeln!(out, "skipped {name:?}: not a .npy member")?;
            continue;
        };
        let key = key.to_owned();
        let header = npy::read_header(&mut member).map_err(|err| in_member(err.into()))?;
        let dtype = npy_dtype(&header).map_err(in_member)?;
        let layout = store::layout(&dtype, &header.shape, encoding)?;
        let raw_len = layout.raw_len();
        let shape = usize_shape(&header.shape)?;
        let available = member.size().saturating_sub(header.data_offset);
        if raw_len > available {
            return Err(in_member(CliError::new(format!(
                "the member holds {available} data bytes, but its header needs {raw_len}"
            ))));
        }
        let bar = progress::bytes_bar(raw_len, &format!("importing {key}"));
        let result = if needs_reordering(&header) && raw_len > 0 {
            // A compressed stream cannot be read out of order: the member is
            // read whole. The buffer grows with the bytes that really arrive,
            // never by the sizes the archive claims.
            let mut data = Vec::new();
            (&mut member)
                .take(raw_len)
                .read_to_end(&mut data)
                .map_err(|err| in_member(err.into()))?;
            if data.len() as u64 != raw_len {
                return Err(in_member(CliError::new(format!(
                    "the member's data ends after {} of {raw_len} bytes",
                    data.len()
                ))));
            }
            dict.insert_array_with(&key, &dtype, &shape, |emit| {
                fortran_to_c(
                    &mut &data[..],
                    data.len(),
                    &shape,
                    dtype.item_size(),
                    emit,
                    &bar,
                )
            })
        } else {
            dict.insert_array_with(&key, &dtype, &shape, |emit| {
                copy_chunks(&mut member, raw_len, emit, &bar)
            })
        };
        bar.finish_and_clear();
        result.map_err(|err| in_member(err.into()))?;
        writeln!(
            out,
            "imported {key:?}: {} {}",
            dtype.name(),
            npy::python_tuple_repr(&header.shape)
        )?;
    }
    Ok(())
}

/// `export-npy`: an array (or a masked array's data or mask) as a C-order `.npy`.
pub(super) fn export_npy(path: &Path, key: &str, npy_path: &Path, want_mask: bool) -> CliResult {
    let dict = ReadDict::open(path)?;
    // Held until the data is copied: a local file cannot change meanwhile.
    let _snapshot = dict.local().map(MmapDict::read).transpose()?;
    let item = dict.get(key)?;
    write_npy(
        key,
        &item,
        npy_path,
        want_mask,
        dict.local().map(MmapDict::path),
    )
}

/// `export-npy`'s writing of the array of `item`, or of its mask when `want_mask`: a mapped
/// array of the local file `local_file` is copied from the file, others from their bytes
/// (an array of a remote file, one pickled as a generic value).
fn write_npy(
    key: &str,
    item: &Item,
    npy_path: &Path,
    want_mask: bool,
    local_file: Option<&Path>,
) -> CliResult {
    let owned;
    let array = match (item, want_mask) {
        (Item::Array(array), false) => array,
        (Item::Masked(masked), false) => &masked.data,
        (Item::Masked(masked), true) => &masked.mask,
        (_, true) => {
            return Err(CliError::new(format!(
                "key {key:?} is not a masked array: no --mask"
            )));
        }
        (Item::Value(value), false) => match OwnedArray::from_value(value) {
            Some(array) => {
                owned = ArrayData::Owned(array.map_err(mmappickle::Error::from)?);
                &owned
            }
            None => return Err(CliError::new(format!("key {key:?} is not an array"))),
        },
        (Item::Other(_), false) => {
            return Err(CliError::new(format!("key {key:?} is not an array")))
        }
    };
    let (dtype, shape, bytes) = (array.dtype(), array.shape(), array.bytes());
    let data_offset = array.as_mapped().map(|map| map.data_offset());
    if !dtype.is_writable() {
        return Err(CliError::new(format!(
            "dtype {} cannot be written to .npy",
            dtype.name()
        )));
    }
    let shape_u64: Vec<u64> = shape.iter().map(|&n| n as u64).collect();
    let file =
        File::create(npy_path).map_err(|err| CliError::from(err).context(npy_path.display()))?;
    let mut writer = BufWriter::with_capacity(CHUNK, file);
    writer.write_all(&npy::write_header(&dtype.type_str(), false, &shape_u64))?;
    let bar = progress::bytes_bar(bytes.len() as u64, &format!("exporting {key}"));
    if let (Some(path), Some(data_offset)) = (local_file, data_offset) {
        // From the file, not through the map: `io::copy` of a file to a file is
        // `copy_file_range`, in the kernel; no page of the data is faulted into this process.
        writer.flush()?;
        let mut source = File::open(path)?;
        source.seek(SeekFrom::Start(data_offset))?;
        let len = bytes.len() as u64;
        if io::copy(&mut source.take(len), writer.get_mut())? != len {
            return Err(CliError::new(format!(
                "{}: the array's data ends early",
                path.display()
            )));
        }
        bar.inc(len);
    } else {
        for chunk in bytes.chunks(CHUNK) {
            writer.write_all(chunk)?;
            bar.inc(chunk.len() as u64);
        }
    }
    writer.flush()?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_c_order(src: &[u8], shape: &[usize], item_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        fortran_to_c(
            &mut &src[..],
            src.len(),
            shape,
            item_size,
            &mut |chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            },
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        out
    }

    #[test]
    fn only_multi_axis_fortran_data_is_reordered() {
        let header = |fortran_order, shape: &[u64]| NpyHeader {
            version: (1, 0),
            descr: "<f8".into(),
            fortran_order,
            shape: shape.to_vec(),
            data_offset: 128,
        };
        assert!(needs_reordering(&header(true, &[2, 3])));
        assert!(!needs_reordering(&header(false, &[2, 3])));
        assert!(!needs_reordering(&header(true, &[1, 5, 1])));
        assert!(!needs_reordering(&header(true, &[])));
    }

    #[test]
    fn fortran_data_comes_out_in_c_order() {
        // The 2x3 matrix [[0, 1, 2], [3, 4, 5]] in Fortran order is 0 3 1 4 2 5.
        assert_eq!(
            collect_c_order(&[0, 3, 1, 4, 2, 5], &[2, 3], 1),
            [0, 1, 2, 3, 4, 5]
        );
        // Two-byte items keep their bytes together: [[a, b], [c, d]] is a c b d in Fortran order.
        assert_eq!(collect_c_order(b"aaccbbdd", &[2, 2], 2), b"aabbccdd");
        // A 2x2x2 cube: element (i, j, k) is at i + 2j + 4k in Fortran order.
        let fortran: Vec<u8> = (0..8).collect();
        let c: Vec<u8> = collect_c_order(&fortran, &[2, 2, 2], 1);
        let expected: Vec<u8> = (0..2)
            .flat_map(|i| (0..2).flat_map(move |j| (0..2).map(move |k| i + 2 * j + 4 * k)))
            .collect();
        assert_eq!(c, expected);
    }
}
