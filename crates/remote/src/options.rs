//! How a remote file is read: block size, cache budget, parallelism, retries, time-outs.

use std::time::Duration;

use mmappickle::codec::Limits;

/// Options of [`RemoteDict::open_with`](crate::RemoteDict::open_with) and
/// [`AsyncRemoteDict::open_with`](crate::AsyncRemoteDict::open_with).
///
/// Credentials and endpoints of object stores come from the environment, as `object_store`
/// reads them (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub(crate) block_size: u64,
    pub(crate) cache_budget: u64,
    pub(crate) parallelism: usize,
    pub(crate) retries: usize,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) store_config: Vec<(String, String)>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            block_size: 1 << 20,
            cache_budget: 64 << 20,
            parallelism: 8,
            retries: 3,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            store_config: Vec::new(),
        }
    }
}

impl RemoteOptions {
    /// The defaults: 1 MiB blocks, a 64 MiB cache, 8 requests at once, 3 retries, 30 s per
    /// request, 5 s to connect.
    pub fn new() -> Self {
        Self::default()
    }

    /// The unit of the cache's ranged reads of the table and of small values (at least 4 KiB).
    pub fn block_size(mut self, bytes: u64) -> Self {
        self.block_size = bytes.max(4096);
        self
    }

    /// The most block bytes kept in memory (at least two blocks): older blocks are dropped.
    pub fn cache_budget(mut self, bytes: u64) -> Self {
        self.cache_budget = bytes;
        self
    }

    /// How many requests a large read (a whole array, rows) runs at once (at least 1).
    pub fn parallelism(mut self, requests: usize) -> Self {
        self.parallelism = requests.max(1);
        self
    }

    /// How many times a failed request (a time-out, a 5xx answer) is retried.
    pub fn retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// The time one request may take, body included (retries get as long again each).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time a connection may take to open.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The decoder's limits for generic values.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// An `object_store` setting of the S3 store, over the environment's: `key` is one of
    /// `object_store`'s names for it (`aws_endpoint`, `aws_access_key_id`, `aws_region`,
    /// `aws_allow_http`, ...); an unknown key makes the open fail.
    pub fn store_config(mut self, key: &str, value: &str) -> Self {
        self.store_config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The cache budget in bytes, never below two blocks (a read may span two).
    pub(crate) fn effective_budget(&self) -> u64 {
        self.cache_budget.max(self.block_size.saturating_mul(2))
    }
}
