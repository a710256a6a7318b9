//! Opening files with clear errors: local files through `mmappickle::MmapDict`, URLs through
//! the remote crate, and [`ReadDict`], the one door of the read commands to either.

use std::path::Path;

use mmappickle::{ArrayEncoding, ErrorKind, Item, Listing, MmapDict};
use mmappickle::{ArrayLayout, DType, Disassembly};

use crate::error::{CliError, CliResult};

/// `dis` of a remote file reads all of it: up to this many bytes.
#[cfg(feature = "remote")]
const MAX_REMOTE_DIS_LEN: u64 = 256 << 20;

/// A file the read commands read: a local file (mapped, under its shared lock), or a URL
/// (`http(s)://`, `s3://`, `file://`, read by ranged requests). Both give the facade's
/// listings and items, which the commands print alike.
#[derive(Debug)]
// One per command: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum ReadDict {
    /// A local file.
    Local(MmapDict),
    /// A remote file and its URL.
    #[cfg(feature = "remote")]
    Remote {
        dict: mmappickle_remote::RemoteDict,
        url: String,
    },
}

impl ReadDict {
    /// Whether `file` names a remote file (a URL this build reads).
    pub fn is_remote(file: &Path) -> bool {
        #[cfg(feature = "remote")]
        return file.to_str().is_some_and(mmappickle_remote::is_url);
        #[cfg(not(feature = "remote"))]
        return false;
    }

    /// Opens `file` read-only: a URL through the remote crate, else a local path.
    pub fn open(file: &Path) -> CliResult<ReadDict> {
        #[cfg(feature = "remote")]
        if let Some(url) = file.to_str().filter(|_| Self::is_remote(file)) {
            let dict = mmappickle_remote::RemoteDict::open(url)
                .map_err(|err| CliError::from(err).context(url))?;
            let url = url.to_owned();
            return Ok(ReadDict::Remote { dict, url });
        }
        let url = file.to_str().filter(|text| text.contains("://"));
        if let (Some(url), false) = (url, file.exists()) {
            return Err(CliError::new(format!(
                "{url}: not a local file, and not a URL this build reads{}",
                if cfg!(feature = "remote") {
                    ""
                } else {
                    " (it was built without the `remote` feature)"
                }
            )));
        }
        open_dict_readonly(file).map(ReadDict::Local)
    }

    /// The local dict, for commands that read the local file itself.
    pub fn local(&self) -> Option<&MmapDict> {
        match self {
            ReadDict::Local(dict) => Some(dict),
            #[cfg(feature = "remote")]
            ReadDict::Remote { .. } => None,
        }
    }

    /// The file's name in messages: its path or its URL.
    pub fn name(&self) -> String {
        match self {
            ReadDict::Local(dict) => dict.path().display().to_string(),
            #[cfg(feature = "remote")]
            ReadDict::Remote { url, .. } => url.clone(),
        }
    }

    /// `err`, said in the file.
    fn in_file(&self, err: mmappickle::Error) -> CliError {
        CliError::from(err).context(self.name())
    }

    /// Every entry with what its value holds (array payloads are not read).
    pub fn listing(&self) -> CliResult<Listing> {
        let listing = match self {
            ReadDict::Local(dict) => dict.listing(),
            #[cfg(feature = "remote")]
            ReadDict::Remote { dict, .. } => dict.listing(),
        };
        listing.map_err(|err| self.in_file(err))
    }

    /// Every entry, without what values hold: no value is read.
    pub fn listing_without_kinds(&self) -> CliResult<Listing> {
        match self {
            ReadDict::Local(dict) => dict
                .listing_without_kinds()
                .map_err(|err| self.in_file(err)),
            #[cfg(feature = "remote")]
            ReadDict::Remote { dict, .. } => Ok(dict.listing_without_kinds()),
        }
    }

    /// What `key` holds.
    pub fn get(&self, key: &str) -> CliResult<Item> {
        let item = match self {
            ReadDict::Local(dict) => dict.get(key),
            #[cfg(feature = "remote")]
            ReadDict::Remote { dict, .. } => dict.get(key),
        };
        item.map_err(|err| match err.kind() {
            ErrorKind::KeyNotFound { .. } => no_key(&self.name(), key),
            _ => self.in_file(err),
        })
    }

    /// Calls `visit` with every live key and what it holds, in file order (a local file's
    /// all from one snapshot).
    pub fn for_each_item(&self, mut visit: impl FnMut(&str, Item) -> CliResult) -> CliResult {
        match self {
            ReadDict::Local(dict) => dict
                .for_each_item(|key, item| visit(key, item))
                .map_err(|err| self.in_file(err))?,
            #[cfg(feature = "remote")]
            ReadDict::Remote { dict, .. } => {
                for key in dict.keys() {
                    visit(&key, self.get(&key)?)?;
                }
                Ok(())
            }
        }
    }

    /// Runs `read` over the disassembly of the whole file (a remote one read whole, up to
    /// [`MAX_REMOTE_DIS_LEN`]).
    pub fn with_disassembly(&self, read: impl FnOnce(&Disassembly<'_>) -> CliResult) -> CliResult {
        match self {
            ReadDict::Local(dict) => dict.with_disassembly(read)?,
            #[cfg(feature = "remote")]
            ReadDict::Remote { dict, url } => {
                let file_len = dict.table().file_len();
                if file_len > MAX_REMOTE_DIS_LEN {
                    return Err(CliError::new(format!(
                        "dis reads a remote file whole: {file_len} bytes is over \
                         {MAX_REMOTE_DIS_LEN} (download it, then run dis on the copy)"
                    ))
                    .context(url));
                }
                let file = dict
                    .read_range(0..file_len)
                    .map_err(|err| self.in_file(err))?;
                read(&Disassembly::from_bytes(&file).map_err(|err| self.in_file(err))?)
            }
        }
    }
}

/// The error for a key that is not in the file.
pub fn no_key(file: &dyn std::fmt::Display, key: &str) -> CliError {
    CliError::new(format!("no key {key:?} in {file}"))
}

/// A missing file said plainly, before a lower layer words it as an I/O error.
pub fn must_exist(path: &Path) -> CliResult {
    if path.exists() {
        Ok(())
    } else {
        Err(CliError::new(format!("{}: no such file", path.display())))
    }
}

/// Opens `path` through the facade, read-only; a torn end is said on standard error (the
/// complete entries are read).
pub fn open_dict_readonly(path: &Path) -> CliResult<MmapDict> {
    must_exist(path)?;
    let dict = MmapDict::open_readonly(path).map_err(|err| dict_open_error(path, err))?;
    if let Some(offset) = dict.torn_at()? {
        eprintln!(
            "mmappickle: warning: {}: the file's end is torn at byte offset {offset} (cut \
             short by a full disk or a crash): the complete entries are read; \
             `mmappickle fsck {}` repairs it",
            path.display(),
            path.display()
        );
    }
    Ok(dict)
}

/// Opens `path` through the facade, read-write (created when missing; a plain
/// pickle is converted), writing arrays in `encoding`.
pub fn open_dict(path: &Path, encoding: ArrayEncoding) -> CliResult<MmapDict> {
    MmapDict::options()
        .encoding(encoding)
        .open(path)
        .map_err(|err| dict_open_error(path, err))
}

fn dict_open_error(path: &Path, err: mmappickle::Error) -> CliError {
    let hint = match err.kind() {
        ErrorKind::PlainPickleReadOnly | ErrorKind::NotADict { .. } => {
            " (read a plain pickle with `mmappickle unpickle`; `mmappickle convert` converts a dict)"
        }
        _ => "",
    };
    CliError::new(format!(
        "{}: {}{hint}",
        path.display(),
        mmappickle::message_with_sources(&err)
    ))
}

/// The array layout for `dtype` and `shape` in the chosen encoding.
pub fn layout(dtype: &DType, shape: &[u64], encoding: ArrayEncoding) -> CliResult<ArrayLayout> {
    let shape = shape
        .iter()
        .map(|&extent| usize::try_from(extent))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| CliError::new("a dimension does not fit in memory addresses"))?;
    ArrayLayout::new(dtype, &shape, encoding).map_err(|err| mmappickle::Error::from(err).into())
}
