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

/// The error's message followed by those of its sources (`what: why: ...`): each error says
/// what and at which byte offset, and no message is part of another's. A source whose
/// message ends the one before it (a library's error that repeats its cause) is not said
/// again.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_message = cause.to_string();
        if !message.ends_with(&cause_message) {
            message.push_str(": ");
            message.push_str(&cause_message);
        }
        source = cause.source();
    }
    message
}

macro_rules! from_display {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(err: $t) -> Self {
                CliError::new(with_sources(&err))
            }
        }
    )*};
}

from_display!(
    mmappickle::Error,
    mmappickle_remote::Error,
    crate::json::JsonError,
    crate::npy::NpyError,
    serde_json::Error,
    zip::result::ZipError,
);

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
