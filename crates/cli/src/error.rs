//! The command's error: one line for stderr.

use std::fmt;
use std::io;

/// What went wrong, as the one line the user sees.
#[derive(Debug)]
pub struct CliError {
    message: String,
    broken_pipe: bool,
}

impl CliError {
    /// An error that says `message`.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            broken_pipe: false,
        }
    }

    /// The same error with `context` said first (`context: message`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Whether the error is only that stdout was closed early.
    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<io::Error> for CliError {
    fn from(err: io::Error) -> Self {
        CliError {
            broken_pipe: err.kind() == io::ErrorKind::BrokenPipe,
            message: err.to_string(),
        }
    }
}

macro_rules! from_display {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(err: $t) -> Self {
                CliError::new(mmappickle::message_with_sources(&err))
            }
        }
    )*};
}

from_display!(
    mmappickle::Error,
    crate::json::JsonError,
    crate::npy::NpyError,
    serde_json::Error,
    zip::result::ZipError,
);

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
