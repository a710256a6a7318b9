//! One function per subcommand; each writes its output to `out`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use mmappickle::{ArrayEncoding, DType, ErrorKind, Item, MappedBytes, MmapDict, OwnedArray};
use mmappickle_array::Kind;
use mmappickle_codec::{dis, loads};
use mmappickle_container::{Container, Entry};
use serde_json::{json, Map, Value as Json};

use crate::arrays;
use crate::error::{CliError, CliResult};
use crate::json::{json_to_value, value_to_json};
use crate::npy::{self, NpyHeader};
use crate::pretty::{repr, str_repr};
use crate::progress;
use crate::store::{self, EntryKind};
use crate::{Cli, Command, Encoding};

/// Array data moves in pieces of this many bytes.
const CHUNK: usize = 8 << 20;
/// Values longer than this are disassembled op by op, without copying them.
const MAX_COPIED_VALUE: u64 = 1 << 20;

/// Runs the command `cli` names.
pub fn run(cli: &Cli, out: &mut dyn Write) -> CliResult {
    let encoding = match cli.encoding {
        Encoding::Compatible => ArrayEncoding::Compatible,
        Encoding::Portable => ArrayEncoding::Portable,
    };
    match &cli.command {
        Command::Ls { file, all, json } => ls(file, *all, *json, out),
        Command::Info { file, json } => info(file, *json, out),
        Command::Get { file, key, json } => get(file, key, *json, out),
        Command::Dump { file, json } => dump(file, *json, out),
        Command::Unpickle { file, json } => unpickle(file, *json, out),
        Command::Dis { file } => disassemble(file, out),
        Command::Set { file, key, value } => set(file, key, value, encoding),
        Command::Rm { file, key } => rm(file, key),
        Command::Stub {
            file,
            key,
            dtype,
            shape,
        } => stub(file, key, dtype, shape, encoding),
        Command::ImportNpy { file, key, npy } => import_npy(file, key, npy, encoding),
        Command::ExportNpy {
            file,
            key,
            out: npy_path,
            mask,
        } => export_npy(file, key, npy_path, *mask),
        Command::ImportNpz { file, npz } => import_npz(file, npz, encoding, out),
        Command::Fsck { file } => fsck(file, out),
        Command::Vacuum { file } => vacuum(file, out),
        Command::Convert { input, output } => convert(input, output.as_deref(), encoding, out),
    }
}

fn print_json(out: &mut dyn Write, json: &Json) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, json)?;
    writeln!(out)?;
    Ok(())
}

// ------------------------------------------------------------------ ls, info

/// One row of `ls`.
struct Row {
    key: String,
    kind: &'static str,
    dtype: String,
    shape: String,
    bytes: u64,
    offset: u64,
    aligned: &'static str,
    json: Json,
}

fn describe_entry(container: &Container, entry: &Entry) -> CliResult<Row> {
    let kind = if entry.is_padding() {
        None
    } else {
        Some(store::entry_kind(container, entry)?)
    };
    let data = |header: &mmappickle_array::ArrayHeader| {
        let offset = entry.value_offset().saturating_add(header.raw_offset);
        (offset, header.raw_len)
    };
    let (kind_name, dtype, shape, bytes, offset) = match &kind {
        None => (
            "padding",
            None,
            None,
            entry.value_len(),
            entry.value_offset(),
        ),
        Some(EntryKind::Value) => ("value", None, None, entry.value_len(), entry.value_offset()),
        Some(EntryKind::Array(header)) => {
            let (offset, bytes) = data(header);
            (
                "array",
                Some(&header.dtype),
                Some(&header.shape),
                bytes,
                offset,
            )
        }
        Some(EntryKind::Masked(header)) => {
            let (offset, bytes) = data(&header.data);
            (
                "masked",
                Some(&header.data.dtype),
                Some(&header.data.shape),
                bytes,
                offset,
            )
        }
    };
    let kind_name = if entry.is_live() || entry.is_padding() {
        kind_name
    } else {
        "deleted"
    };
    let aligned = match dtype {
        None => "-",
        Some(_) if offset % mmappickle_array::DATA_ALIGN == 0 => "yes",
        Some(_) => "no",
    };
    let mut json = Map::new();
    json.insert("key".into(), json!(entry.key()));
    json.insert("kind".into(), json!(kind_name));
    if let (Some(dtype), Some(shape)) = (dtype, shape) {
        json.insert("dtype".into(), json!(dtype.name()));
        json.insert("shape".into(), json!(shape));
        json.insert("aligned".into(), json!(aligned == "yes"));
    }
    json.insert("bytes".into(), json!(bytes));
    json.insert("offset".into(), json!(offset));
    Ok(Row {
        key: entry.key().to_owned(),
        kind: kind_name,
        dtype: dtype.map_or("-".into(), DType::name),
        shape: shape.map_or("-".into(), |s| arrays::shape_repr(s)),
        bytes,
        offset,
        aligned,
        json: Json::Object(json),
    })
}

fn ls(path: &Path, all: bool, as_json: bool, out: &mut dyn Write) -> CliResult {
    let mut container = store::open_readonly(path)?;
    let entries: Vec<Entry> = container.table()?.entries().to_vec();
    let mut rows = Vec::new();
    for entry in entries.iter().filter(|e| all || e.is_live()) {
        rows.push(describe_entry(&container, entry)?);
    }
    if as_json {
        return print_json(
            out,
            &Json::Array(rows.into_iter().map(|r| r.json).collect()),
        );
    }
    let table: Vec<[String; 7]> = std::iter::once(
        [
            "KEY", "KIND", "DTYPE", "SHAPE", "BYTES", "OFFSET", "ALIGNED",
        ]
        .map(String::from),
    )
    .chain(rows.into_iter().map(|row| {
        [
            row.key,
            row.kind.into(),
            row.dtype,
            row.shape,
            row.bytes.to_string(),
            row.offset.to_string(),
            row.aligned.into(),
        ]
    }))
    .collect();
    let mut widths = [0usize; 7];
    for row in &table {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &table {
        let mut line = String::new();
        for (col, (cell, width)) in row.iter().zip(widths).enumerate() {
            if col == 6 {
                line.push_str(cell);
            } else if col == 4 || col == 5 {
                line.push_str(&format!("{cell:>width$}  "));
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn info(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let mut container = store::open_readonly(path)?;
    let mut header = [0u8; 24];
    File::open(path)?.read_exact(&mut header)?;
    let format_version = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    let file_len = container.file_len()?;
    let table = container.table()?;
    let commit_number = table.commit_number();
    let live = table.n_live();
    let live_offsets: Vec<u64> = table.live_entries().map(Entry::offset).collect();
    let (mut deleted, mut padding, mut shadowed, mut reclaimable) = (0usize, 0usize, 0usize, 0u64);
    for entry in table.entries() {
        if entry.is_padding() {
            padding += 1;
        } else if !entry.is_live() {
            deleted += 1;
        } else if live_offsets.binary_search(&entry.offset()).is_err() {
            shadowed += 1; // an older live duplicate left by an interrupted replace
        } else {
            continue;
        }
        reclaimable = reclaimable.saturating_add(entry.len());
    }
    if as_json {
        return print_json(
            out,
            &json!({
                "format_version": format_version,
                "commit_number": commit_number,
                "live_entries": live,
                "deleted_entries": deleted,
                "padding_entries": padding,
                "shadowed_entries": shadowed,
                "reclaimable_bytes": reclaimable,
                "file_size": file_len,
            }),
        );
    }
    writeln!(out, "file:               {}", path.display())?;
    writeln!(out, "format version:     {format_version}")?;
    writeln!(out, "commit number:      {commit_number}")?;
    writeln!(out, "live entries:       {live}")?;
    writeln!(out, "deleted entries:    {deleted}")?;
    writeln!(out, "padding entries:    {padding}")?;
    if shadowed > 0 {
        writeln!(out, "shadowed entries:   {shadowed} (run fsck)")?;
    }
    writeln!(
        out,
        "reclaimable bytes:  {reclaimable} (an upper bound: vacuum may re-pad)"
    )?;
    writeln!(out, "file size:          {file_len}")?;
    Ok(())
}

// ------------------------------------------------------------------ get, dump

fn item_json(item: &Item) -> Json {
    let digest = |array: &MappedBytes| arrays::digest(array.dtype(), array.shape(), array.bytes());
    match item {
        Item::Value(value) => value_to_json(value),
        Item::Array(array) => json!({ "ndarray": digest(array) }),
        Item::Masked(masked) => arrays::masked_json(digest(&masked.data), digest(&masked.mask)),
        #[allow(unreachable_patterns)]
        other => json!({ "unknown": format!("{other:?}") }),
    }
}

fn item_repr(item: &Item) -> String {
    match item {
        Item::Value(value) => repr(value),
        Item::Array(array) => arrays::summary(array.dtype(), array.shape(), array.bytes()),
        Item::Masked(masked) => arrays::masked_summary(
            masked.data.dtype(),
            masked.data.shape(),
            masked.data.bytes(),
            masked.mask.shape(),
            masked.mask.bytes(),
        ),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// The item of `key`, with the file named in the error.
fn get_item(dict: &mut MmapDict, key: &str) -> CliResult<Item> {
    dict.get(key).map_err(|err| match err.kind() {
        ErrorKind::KeyNotFound(_) => no_key(dict.path(), key),
        _ => CliError::from(err).context(dict.path().display()),
    })
}

fn no_key(path: &Path, key: &str) -> CliError {
    CliError::new(format!("no key {key:?} in {}", path.display()))
}

fn get(path: &Path, key: &str, as_json: bool, out: &mut dyn Write) -> CliResult {
    let mut dict = store::open_dict_readonly(path)?;
    let item = get_item(&mut dict, key)?;
    if as_json {
        print_json(out, &item_json(&item))
    } else {
        writeln!(out, "{}", item_repr(&item))?;
        Ok(())
    }
}

fn dump(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let mut dict = store::open_dict_readonly(path)?;
    let keys = dict.keys()?;
    let mut object = Map::new();
    if !as_json {
        writeln!(out, "{{")?;
    }
    for key in keys {
        let item = get_item(&mut dict, &key)?;
        if as_json {
            object.insert(key, item_json(&item));
        } else {
            writeln!(out, "    {}: {},", str_repr(&key), item_repr(&item))?;
        }
    }
    if as_json {
        print_json(out, &Json::Object(object))
    } else {
        writeln!(out, "}}")?;
        Ok(())
    }
}

fn unpickle(path: &Path, as_json: bool, out: &mut dyn Write) -> CliResult {
    let data = std::fs::read(path).map_err(|err| CliError::from(err).context(path.display()))?;
    let value = loads(&data).map_err(|err| CliError::from(err).context(path.display()))?;
    if as_json {
        print_json(out, &value_to_json(&value))
    } else {
        writeln!(out, "{}", repr(&value))?;
        Ok(())
    }
}

// ------------------------------------------------------------------ dis

/// The codec's listing of `value` (given without PROTO or STOP), its offsets
/// moved to file offsets and indented under the entry line.
fn dis_value(value: &[u8], value_offset: u64, out: &mut dyn Write) -> CliResult {
    let mut stream = value.to_vec();
    stream.push(b'.'); // STOP, so the listing ends cleanly
    let listing = dis(&stream);
    let stop_offset = value.len();
    for line in listing.lines() {
        let Some((offset_text, rest)) = line.split_once(':') else {
            writeln!(out, "        {line}")?;
            continue;
        };
        match offset_text.trim().parse::<usize>() {
            Ok(offset) if offset == stop_offset => {} // our STOP
            Ok(offset) => {
                let file_offset = value_offset.saturating_add(offset as u64);
                writeln!(
                    out,
                    "{file_offset:>10}:    {}",
                    rest.strip_prefix(' ').unwrap_or(rest)
                )?;
            }
            Err(_) => writeln!(out, "        {line}")?,
        }
    }
    Ok(())
}

/// Lists a large value op by op from the file map, showing big payloads by size.
fn dis_large_value(value: &[u8], value_offset: u64, out: &mut dyn Write) -> CliResult {
    let mut ops = mmappickle_codec::ops(value).peekable();
    while let Some(item) = ops.next() {
        let (offset, op) = match item {
            Ok(pair) => pair,
            Err(err) => {
                // The value has no STOP of its own: the end of input is its end.
                if err.offset() < value.len() {
                    writeln!(out, "        error: {}", err.shifted(value_offset as usize))?;
                }
                break;
            }
        };
        let file_offset = value_offset.saturating_add(offset as u64);
        // The op's length, from where the next one starts: no payload is copied.
        let next_offset = match ops.peek() {
            Some(Ok((next, _))) => *next,
            _ => value.len(),
        };
        let op_len = next_offset.saturating_sub(offset);
        if op_len > 128 {
            writeln!(
                out,
                "{file_offset:>10}:    {} <{op_len} bytes with its argument>",
                op.name()
            )?;
            continue;
        }
        let mut encoded = Vec::with_capacity(op_len + 1);
        mmappickle_codec::encode_op(&op, &mut encoded);
        encoded.push(b'.');
        let listing = dis(&encoded);
        let first = listing.lines().next().unwrap_or("");
        let text = first
            .split_once(':')
            .map_or(first, |(_, rest)| rest.trim_start());
        writeln!(out, "{file_offset:>10}:    {text}")?;
    }
    Ok(())
}

fn disassemble(path: &Path, out: &mut dyn Write) -> CliResult {
    let mut container = match Container::open_readonly(path) {
        Ok(container) => container,
        Err(err) => {
            // Not an mmappickle file: show it as the plain pickle it may be.
            let data = std::fs::read(path)
                .map_err(|io_err| CliError::from(io_err).context(path.display()))?;
            writeln!(out, "{}: {err}; as a plain pickle:", path.display())?;
            out.write_all(dis(&data).as_bytes())?;
            return Ok(());
        }
    };
    let commit_number = container.commit_number()?;
    let entries: Vec<Entry> = container.table()?.entries().to_vec();
    let file_len = container.file_len()?;
    container.with_read_map(|file| -> CliResult {
        writeln!(
            out,
            "{:>10}: header: PROTO 4, FRAME 13, format version 1, commit number {commit_number}, MARK",
            0
        )?;
        for (entry_idx, entry) in entries.iter().enumerate() {
            let state = if entry.is_padding() {
                "padding"
            } else if entry.is_live() {
                "live"
            } else {
                "deleted"
            };
            writeln!(
                out,
                "{:>10}: entry {entry_idx}: key {} ({state}), FRAME {}, value {} bytes at {}, memo_max {}",
                entry.offset(),
                str_repr(entry.key()),
                entry.len().saturating_sub(9),
                entry.value_len(),
                entry.value_offset(),
                entry.memo_max()
            )?;
            let range = usize::try_from(entry.value_offset()).ok().zip(
                usize::try_from(entry.value_offset().saturating_add(entry.value_len())).ok(),
            );
            let Some(value) = range.and_then(|(start, end)| file.get(start..end)) else {
                writeln!(out, "        error: the value lies outside the file")?;
                continue;
            };
            if entry.value_len() <= MAX_COPIED_VALUE {
                dis_value(value, entry.value_offset(), out)?;
            } else {
                dis_large_value(value, entry.value_offset(), out)?;
            }
            writeln!(
                out,
                "{:>10}:    end of entry: BININT {} POP, {}, POP",
                entry.end().saturating_sub(8),
                entry.memo_max(),
                if entry.is_live() { "NEWTRUE" } else { "POP (deleted)" }
            )?;
        }
        writeln!(
            out,
            "{:>10}: terminator: FRAME 2, DICT, STOP",
            file_len.saturating_sub(11)
        )?;
        Ok(())
    })?
}

// ------------------------------------------------------------------ set, rm, stub

fn set(path: &Path, key: &str, text: &str, encoding: ArrayEncoding) -> CliResult {
    let text = if text == "-" {
        let mut stdin = String::new();
        io::stdin().read_to_string(&mut stdin)?;
        stdin
    } else {
        text.to_owned()
    };
    let json: Json = serde_json::from_str(&text)
        .map_err(|err| CliError::new(format!("the value is not valid JSON: {err}")))?;
    let value = json_to_value(&json)?;
    let mut dict = store::open_dict(path, encoding)?;
    dict.insert(key, value)?;
    Ok(())
}

fn rm(path: &Path, key: &str) -> CliResult {
    let mut dict = store::open_dict(path, ArrayEncoding::default())?;
    if dict.remove(key)? {
        Ok(())
    } else {
        Err(no_key(path, key))
    }
}

fn parse_dtype(name: &str) -> CliResult<DType> {
    let dtype = DType::parse(name).map_err(|err| CliError::from(err).context("--dtype"))?;
    if !dtype.is_writable() {
        return Err(CliError::new(format!(
            "dtype {name:?} cannot be stored as an array"
        )));
    }
    Ok(dtype)
}

fn stub(path: &Path, key: &str, dtype: &str, shape: &[u64], encoding: ArrayEncoding) -> CliResult {
    let dtype = parse_dtype(dtype)?;
    let shape = shape
        .iter()
        .map(|&n| usize::try_from(n))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))?;
    let stub = mmappickle_stubs::EmptyArray::with_dtype(dtype, &shape).encoding(encoding);
    let mut dict = store::open_dict(path, encoding)?;
    dict.insert_stub(key, stub)?;
    Ok(())
}

// ------------------------------------------------------------------ npy, npz

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

/// Emits Fortran-ordered `src` in C order, a chunk at a time.
fn fortran_to_c(
    src: &[u8],
    shape: &[usize],
    item_size: usize,
    emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    bar: &indicatif::ProgressBar,
) -> io::Result<()> {
    if src.is_empty() || item_size == 0 {
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
    let mut chunk = Vec::with_capacity(CHUNK.min(src.len()));
    let n_items = src.len() / item_size;
    for _ in 0..n_items {
        let item = src
            .get(src_offset..src_offset + item_size)
            .ok_or_else(|| io::Error::other("array data shorter than its shape"))?;
        chunk.extend_from_slice(item);
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

fn usize_shape(shape: &[u64]) -> CliResult<Vec<usize>> {
    shape
        .iter()
        .map(|&n| usize::try_from(n))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))
}

fn import_npy(path: &Path, key: &str, npy_path: &Path, encoding: ArrayEncoding) -> CliResult {
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
    let mut container = store::open_writable(path)?;
    let bar = progress::bytes_bar(raw_len, &format!("importing {key}"));
    let result = if header.fortran_order && raw_len > 0 {
        // Read the source through a map, in C order.
        let shape = usize_shape(&header.shape)?;
        let source = MappedBytes::map(&npy_file, header.data_offset, dtype.clone(), &shape)
            .map_err(|err| in_npy(err.into()))?;
        store::insert_array(&mut container, key, &layout, |emit| {
            fortran_to_c(source.bytes(), &shape, dtype.item_size(), emit, &bar)
        })
    } else {
        store::insert_array(&mut container, key, &layout, |emit| {
            copy_chunks(&mut reader, raw_len, emit, &bar)
        })
    };
    bar.finish_and_clear();
    result
}

fn import_npz(
    path: &Path,
    npz_path: &Path,
    encoding: ArrayEncoding,
    out: &mut dyn Write,
) -> CliResult {
    let in_npz = |err: CliError| err.context(npz_path.display());
    let archive_file = File::open(npz_path).map_err(|err| in_npz(err.into()))?;
    let mut archive =
        zip::ZipArchive::new(BufReader::new(archive_file)).map_err(|err| in_npz(err.into()))?;
    let mut container = store::open_writable(path)?;
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
        let available = member.size().saturating_sub(header.data_offset);
        if raw_len > available {
            return Err(in_member(CliError::new(format!(
                "the member holds {available} data bytes, but its header needs {raw_len}"
            ))));
        }
        let bar = progress::bytes_bar(raw_len, &format!("importing {key}"));
        let result = if header.fortran_order && raw_len > 0 {
            // A compressed stream cannot be read out of order: the member is
            // read whole (its length was checked against the archive's).
            let mut data = vec![0u8; usize::try_from(raw_len).unwrap_or(usize::MAX)];
            member
                .read_exact(&mut data)
                .map_err(|err| in_member(err.into()))?;
            let shape = usize_shape(&header.shape)?;
            store::insert_array(&mut container, &key, &layout, |emit| {
                fortran_to_c(&data, &shape, dtype.item_size(), emit, &bar)
            })
        } else {
            store::insert_array(&mut container, &key, &layout, |emit| {
                copy_chunks(&mut member, raw_len, emit, &bar)
            })
        };
        bar.finish_and_clear();
        result.map_err(in_member)?;
        writeln!(
            out,
            "imported {key:?}: {} {}",
            dtype.name(),
            npy::python_tuple_repr(&header.shape)
        )?;
    }
    Ok(())
}

fn export_npy(path: &Path, key: &str, npy_path: &Path, want_mask: bool) -> CliResult {
    let mut dict = store::open_dict_readonly(path)?;
    let item = get_item(&mut dict, key)?;
    let owned;
    let (dtype, shape, bytes): (&DType, &[usize], &[u8]) = match (&item, want_mask) {
        (Item::Array(array), false) => (array.dtype(), array.shape(), array.bytes()),
        (Item::Masked(masked), false) => (
            masked.data.dtype(),
            masked.data.shape(),
            masked.data.bytes(),
        ),
        (Item::Masked(masked), true) => (
            masked.mask.dtype(),
            masked.mask.shape(),
            masked.mask.bytes(),
        ),
        (_, true) => {
            return Err(CliError::new(format!(
                "key {key:?} is not a masked array: no --mask"
            )));
        }
        (Item::Value(value), false) => match OwnedArray::from_value(value) {
            Some(array) => {
                owned = array?;
                (&owned.dtype, &owned.shape, &owned.data)
            }
            None => return Err(CliError::new(format!("key {key:?} is not an array"))),
        },
        #[allow(unreachable_patterns)]
        _ => return Err(CliError::new(format!("key {key:?} is not an array"))),
    };
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
    for chunk in bytes.chunks(CHUNK) {
        writer.write_all(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    writer.flush()?;
    bar.finish_and_clear();
    Ok(())
}

// ------------------------------------------------------------------ fsck, vacuum, convert

fn fsck(path: &Path, out: &mut dyn Write) -> CliResult {
    let mut dict = MmapDict::options()
        .allow_damaged(true)
        .open(path)
        .map_err(|err| CliError::from(err).context(path.display()))?;
    let report = dict.fsck()?;
    if report.is_clean() {
        writeln!(
            out,
            "{}: clean, {} entries",
            path.display(),
            report.kept_entries
        )?;
        return Ok(());
    }
    writeln!(out, "{}: repaired", path.display())?;
    writeln!(out, "  kept entries:        {}", report.kept_entries)?;
    if report.dropped_bytes > 0 {
        writeln!(
            out,
            "  dropped bytes:       {} (from offset {})",
            report.dropped_bytes, report.truncated_at
        )?;
    }
    if let Some(key) = &report.dropped_key {
        writeln!(out, "  dropped torn entry:  {}", str_repr(key))?;
    }
    if let Some(problem) = &report.problem {
        writeln!(out, "  problem:             {problem}")?;
    }
    if report.deleted_duplicates > 0 {
        writeln!(out, "  deleted duplicates:  {}", report.deleted_duplicates)?;
    }
    Ok(())
}

fn vacuum(path: &Path, out: &mut dyn Write) -> CliResult {
    let mut dict = store::open_dict(path, ArrayEncoding::default())?;
    let spinner = progress::spinner("vacuuming");
    let report = dict.vacuum();
    spinner.finish_and_clear();
    let report = report?;
    writeln!(
        out,
        "{}: removed {} entries, {} -> {} bytes, commit number {}",
        path.display(),
        report.removed_entries,
        report.len_before,
        report.len_after,
        report.commit_number
    )?;
    Ok(())
}

/// Converts a plain pickle of a dict: in place, or into a copy at `output`.
fn convert(
    input: &Path,
    output: Option<&Path>,
    encoding: ArrayEncoding,
    out: &mut dyn Write,
) -> CliResult {
    let target = match output {
        None => input,
        Some(output) => {
            if output.exists() {
                return Err(CliError::new(format!(
                    "{} exists: give a new path, or convert in place",
                    output.display()
                )));
            }
            std::fs::copy(input, output)
                .map_err(|err| CliError::from(err).context(input.display()))?;
            output
        }
    };
    if Container::open_readonly(target).is_ok() {
        writeln!(out, "{}: already an mmappickle file", target.display())?;
        return Ok(());
    }
    let spinner = progress::spinner("converting");
    let options = MmapDict::options().encoding(encoding);
    let result = MmapDict::convert(target, &options);
    spinner.finish_and_clear();
    if let Err(err) = result {
        if output.is_some() {
            // Leave no half-made copy behind.
            let _ = std::fs::remove_file(target);
        }
        return Err(CliError::from(err).context(input.display()));
    }
    let keys = store::open_dict_readonly(target)?.keys()?.len();
    writeln!(out, "{}: converted, {keys} keys", target.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_c_order(src: &[u8], shape: &[usize], item_size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        fortran_to_c(
            src,
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
