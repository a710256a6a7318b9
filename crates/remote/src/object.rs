//! One remote object at one version: ranged reads, each after the first conditional on the
//! version the first one saw, counted.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, ClientOptions, GetOptions, GetRange, GetResult, ObjectMeta,
    ObjectStore, RetryConfig,
};
use url::Url;

use crate::error::{request_error, Error, ErrorKind};
use crate::options::RemoteOptions;

/// Requests made and body bytes received, since the open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transfer {
    /// Number of GET requests (retries inside `object_store` not counted).
    pub requests: u64,
    /// Number of body bytes received.
    pub bytes: u64,
}

/// The largest piece of a large read one request fetches: big enough to keep a connection
/// streaming, small enough to spread a read over the parallel requests.
const MAX_PIECE: u64 = 16 << 20;

#[derive(Debug)]
pub(crate) struct RemoteObject {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// The object as the first request saw it: its size and version.
    meta: ObjectMeta,
    block_size: u64,
    parallelism: usize,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl RemoteObject {
    /// Opens `url` and reads its first block, which also gives the object's size and version.
    pub(crate) async fn open(
        url: &str,
        options: &RemoteOptions,
    ) -> Result<(RemoteObject, Vec<u8>), Error> {
        let (store, path) = store_for(url, options)?;
        let first = 0..options.block_size;
        let get = GetOptions::new().with_range(Some(GetRange::Bounded(first.clone())));
        let result = store
            .get_opts(&path, get)
            .await
            .map_err(|error| request_error(error, 0))?;
        let meta = result.meta.clone();
        let object = RemoteObject {
            store,
            path,
            meta,
            block_size: options.block_size,
            parallelism: options.parallelism,
            requests: AtomicU64::new(1),
            bytes: AtomicU64::new(0),
        };
        let expected = 0..object.len().min(first.end);
        let mut block = vec![0; expected.end as usize];
        object.body_into(result, expected, &mut block).await?;
        Ok((object, block))
    }

    /// The object's size.
    pub(crate) fn len(&self) -> u64 {
        self.meta.size
    }

    pub(crate) fn transfer(&self) -> Transfer {
        Transfer {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// The version read first, as an error message shows it.
    fn version(&self) -> String {
        match &self.meta.e_tag {
            Some(e_tag) => format!("ETag {e_tag}"),
            None => format!(
                "of {} bytes modified {}",
                self.meta.size, self.meta.last_modified
            ),
        }
    }

    /// Fills `out` with the bytes at `offset`, in pieces fetched `parallelism` at a time.
    pub(crate) async fn read_into(&self, offset: u64, out: &mut [u8]) -> Result<(), Error> {
        let len = out.len() as u64;
        let piece_len = len
            .div_ceil(self.parallelism as u64)
            .clamp(self.block_size, MAX_PIECE.max(self.block_size));
        let pieces = out
            .chunks_mut(piece_len as usize)
            .enumerate()
            .map(|(piece_idx, piece)| {
                let start = offset + piece_idx as u64 * piece_len;
                self.read_exact(start..start + piece.len() as u64, piece)
            });
        futures::stream::iter(pieces)
            .buffer_unordered(self.parallelism)
            .try_collect()
            .await
    }

    /// Fills `out` with the bytes of `range` (one request), from the version read first.
    pub(crate) async fn read_exact(&self, range: Range<u64>, out: &mut [u8]) -> Result<(), Error> {
        if range.is_empty() {
            return Ok(());
        }
        let mut get = GetOptions::new().with_range(Some(GetRange::Bounded(range.clone())));
        match &self.meta.e_tag {
            Some(e_tag) => get = get.with_if_match(Some(e_tag.clone())),
            None => get = get.with_if_unmodified_since(Some(self.meta.last_modified)),
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = match self.store.get_opts(&self.path, get).await {
            Ok(result) => result,
            Err(object_store::Error::Precondition { .. }) => {
                return Err(self.changed(None, range.start))
            }
            Err(object_store::Error::NotFound { .. }) => {
                return Err(self.changed(Some("no object".into()), range.start))
            }
            Err(error) => return Err(request_error(error, range.start)),
        };
        // A store that ignores the precondition still says which version it sent.
        if result.meta.e_tag != self.meta.e_tag || result.meta.size != self.meta.size {
            let found = match &result.meta.e_tag {
                Some(e_tag) => format!("ETag {e_tag} of {} bytes", result.meta.size),
                None => format!("{} bytes", result.meta.size),
            };
            return Err(self.changed(Some(found), range.start));
        }
        self.body_into(result, range, out).await
    }

    fn changed(&self, found: Option<String>, offset: u64) -> Error {
        Error::new(
            ErrorKind::Changed {
                expected: self.version(),
                found,
            },
            offset,
        )
    }

    /// Streams the body of `result` into `out`, which is exactly as long as `range`: a body
    /// of another range or length is refused, and never buffered past `out`.
    async fn body_into(
        &self,
        result: GetResult,
        range: Range<u64>,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let bad = |problem: String| {
            Error::new(
                ErrorKind::BadResponse {
                    requested: range.clone(),
                    problem,
                },
                range.start,
            )
        };
        if result.range != range {
            return Err(bad(format!(
                "the store sent bytes {}..{}",
                result.range.start, result.range.end
            )));
        }
        let mut stream = result.into_stream();
        let mut written = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|error| request_error(error, range.start + written as u64))?;
            self.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let end = written + chunk.len();
            let Some(dest) = out.get_mut(written..end) else {
                return Err(bad(format!(
                    "the body is longer than the {} bytes asked",
                    out.len()
                )));
            };
            dest.copy_from_slice(&chunk);
            written = end;
        }
        if written != out.len() {
            return Err(bad(format!(
                "the body ended after {written} of {} bytes",
                out.len()
            )));
        }
        Ok(())
    }
}

/// The URL schemes a remote dict reads, as they start a URL.
pub const SCHEMES: [&str; 5] = ["http://", "https://", "s3://", "s3a://", "file://"];

/// Whether `text` is a URL of a scheme a remote dict reads (else, to a tool, a local path).
pub fn is_url(text: &str) -> bool {
    SCHEMES.iter().any(|scheme| text.starts_with(scheme))
}

/// The store and the object's path for `url`.
fn store_for(url: &str, options: &RemoteOptions) -> Result<(Arc<dyn ObjectStore>, Path), Error> {
    let bad_url = |reason: String| {
        Error::unplaced(ErrorKind::BadUrl {
            url: url.to_owned(),
            reason,
        })
    };
    let parsed = Url::parse(url).map_err(|error| bad_url(error.to_string()))?;
    let object_path = |path: &str| Path::from_url_path(path).map_err(|e| bad_url(e.to_string()));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: options.retries,
        retry_timeout: options.timeout.saturating_mul(options.retries as u32 + 1),
    };
    // reqwest is built without a TLS crypto provider of its own (object_store's would be
    // aws-lc, a large C build): ring serves. An error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store_error = |error: object_store::Error| bad_url(error.to_string());
    match parsed.scheme() {
        "http" | "https" => {
            // Plain HTTP needs no trust store (loading the system's costs milliseconds).
            let client = ClientOptions::new()
                .with_no_system_certificates(parsed.scheme() == "http")
                .with_allow_http(true)
                .with_timeout(options.timeout)
                .with_connect_timeout(options.connect_timeout);
            let store = HttpBuilder::new()
                .with_url(parsed.origin().ascii_serialization())
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(store_error)?;
            Ok((Arc::new(store), object_path(parsed.path())?))
        }
        "s3" | "s3a" => {
            let millis = |duration: Duration| format!("{}ms", duration.as_millis());
            let mut builder = AmazonS3Builder::from_env();
            for (key, value) in &options.store_config {
                let key: AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|_| bad_url(format!("unknown S3 setting {key:?}")))?;
                builder = builder.with_config(key, value);
            }
            let store = builder
                .with_url(url)
                .with_retry(retry)
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    millis(options.timeout),
                )
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    millis(options.connect_timeout),
                )
                .build()
                .map_err(store_error)?;
            Ok((Arc::new(store), object_path(parsed.path())?))
        }
        "file" => {
            let file_path = parsed
                .to_file_path()
                .map_err(|()| bad_url("not a local file path".into()))?;
            let path = Path::from_absolute_path(&file_path).map_err(|e| bad_url(e.to_string()))?;
            Ok((Arc::new(LocalFileSystem::new()), path))
        }
        scheme => Err(bad_url(format!(
            "unsupported scheme {scheme:?} (http, https, s3, file)"
        ))),
    }
}
