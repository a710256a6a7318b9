//! Errors of remote reads: the facade's own [`Error`] and [`ErrorKind`], so that a remote
//! file's problems read as a local file's, and the two ways only a remote file fails.

pub use mmappickle::{Error, ErrorKind};

/// A request the store failed, at `offset` of the remote file.
pub(crate) fn request_error(error: object_store::Error, offset: u64) -> Error {
    Error::new(ErrorKind::Request(Box::new(error)), offset)
}

/// A layout error of the remote file (its offset kept), said without the advice to run
/// fsck, which mends local files only.
pub(crate) fn layout_error(error: mmappickle::container::Error) -> Error {
    match error.offset() {
        Some(offset) => Error::new(ErrorKind::RemoteLayout(error), offset),
        None => Error::unplaced(ErrorKind::RemoteLayout(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The messages of `error` and its sources, outermost first.
    fn chain(error: &Error) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            messages.push(cause.to_string());
            source = cause.source();
        }
        messages
    }

    // A nested error is said once: as the source, not again inside this error's message.
    #[test]
    fn no_message_of_the_chain_is_said_twice() {
        let store = object_store::Error::NotFound {
            path: "data.mmdpickle".into(),
            source: "gone".into(),
        };
        let messages = chain(&request_error(store, 4096));
        // Ours says the store's error once, as its source (object_store's own errors may
        // repeat theirs: a chain printer can drop a message its predecessor contains).
        assert_eq!(
            messages[..2],
            [
                "request failed after its retries at byte offset 4096",
                "Object at location data.mmdpickle not found: gone",
            ]
        );
    }

    // A layer's error keeps its place in the file; a bad URL has none.
    #[test]
    fn offsets_are_file_offsets_or_none() {
        let codec =
            mmappickle::codec::Error::new(mmappickle::codec::ErrorKind::UnknownOpcode(0xff), 3);
        assert_eq!(Error::codec_at(codec, 100).offset(), Some(103));
        let bad_url = Error::unplaced(ErrorKind::BadUrl {
            url: "ftp://x".into(),
            reason: "unsupported scheme".into(),
        });
        assert_eq!(bad_url.offset(), None);
        assert_eq!(
            bad_url.to_string(),
            "cannot open ftp://x: unsupported scheme"
        );
    }

    // A remote file's torn end does not advise fsck, which mends local files only.
    #[test]
    fn a_torn_remote_file_does_not_advise_fsck() {
        let truncated = mmappickle::container::Error::new(
            mmappickle::container::ErrorKind::TruncatedEntry {
                entry_end: 1 << 63,
                file_len: 400,
            },
            24,
        );
        let error = layout_error(truncated);
        assert_eq!(error.offset(), Some(24));
        assert!(!error.to_string().contains("fsck"), "{error}");
        assert!(
            error.to_string().contains("400-byte remote file"),
            "{error}"
        );
    }
}
