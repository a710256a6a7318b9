//! Read-only access to mmappickle files over HTTP(S), S3 and local files, through
//! [`object_store`].
//!
//! [`RemoteDict::open`] reads the file's header and entry table by ranged GETs through a
//! block cache (1 MiB blocks by default), skipping array payloads; values are read on demand,
//! arrays whole or by rows (a contiguous byte range of a C-ordered array, fetched in parallel
//! pieces when large). The table is parsed by the container crate's own scan
//! ([`mmappickle::container::Scanner`]), the array expressions by the array crate's parser.
//!
//! Every request after the first is conditional on the object's version (`If-Match` on the
//! ETag, else `If-Unmodified-Since`): a file replaced while it is read gives
//! [`ErrorKind::Changed`], never a mix of two versions. Credentials and endpoints of object
//! stores come from the environment as `object_store` reads them (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).
//! [`AsyncRemoteDict`] is the same for async callers.
//!
//! ```
//! use mmappickle::Value;
//! use mmappickle_remote::RemoteDict;
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("example.mmdpickle");
//! # let mut m = mmappickle::MmapDict::open(&path)?;
//! # m.insert("answer", 42i64)?;
//! # m.insert_array("a", &[1.0f64, 2.0, 3.0, 4.0], &[2, 2])?;
//! # drop(m);
//! # let url = format!("file://{}", path.display());
//! // url: "https://host/data.mmdpickle", "s3://bucket/data.mmdpickle", "file:///..."
//! let remote = RemoteDict::open(&url)?;
//! assert_eq!(remote.keys(), ["answer", "a"]);
//! assert_eq!(remote.get("answer")?, Value::from(42i64));
//! let row = remote.array_rows("a", 1..2)?; // the second row only
//! assert_eq!(row.shape, [1, 2]);
//! assert_eq!(row.to_vec::<f64>()?, [3.0, 4.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cache;
mod dict;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod object;
mod options;

pub use crate::{
    dict::{AsyncRemoteDict, RemoteDict},
    error::{Error, ErrorKind},
    object::{is_url, Transfer, SCHEMES},
    options::RemoteOptions,
};
