//! The file layout of FORMAT.md, one module per job: the format's facts (`format`), the entry
//! table and its key index (`table`, its keys' arena in `keys`), the scan of a file
//! (`scan`, over a `source` of bytes), the recognisers of what other writers leave behind
//! (`remnants`) and the walks that salvage a damaged file (`salvage`).
//!
//! Each module uses only those listed before it.

mod format;
mod keys;
mod remnants;
mod salvage;
mod scan;
mod source;
mod table;

pub(crate) use self::format::{
    encode_entry_head, encode_entry_trailer, encode_padding_entry, entry_head_before_key, i32_in,
    live_flag, padding_len, padding_to, push_entry_head, ENTRY_HEAD_LEN, ENTRY_TRAILER_LEN,
    FRAME_HEAD_LEN, TRAILER_FLAG_IDX, TRAILER_MEMO_MAX,
};
pub use self::format::{
    encode_header, COMMIT_NUMBER_OFFSET, FORMAT_VERSION, HEADER_LEN, MAX_KEY_LEN, MIN_PADDING_LEN,
    TERMINATOR,
};
pub(crate) use self::keys::{KeyArena, KeyWriter};
pub(crate) use self::remnants::value_memo_max;
pub(crate) use self::salvage::{entries_resume_at, salvage};
pub use self::scan::{parse_header, scan, ScanProgress, Scanner};
pub use self::source::{ByteSource, NotLoaded};
pub(crate) use self::table::{memo_start, new_entry, new_entry_in, KeyIndex, MAX_ENTRIES};
pub use self::table::{Entry, Table};
