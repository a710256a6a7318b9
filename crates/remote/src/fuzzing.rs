//! Fuzz target bodies: the cargo-fuzz `remote_scan` target in `fuzz/` is one call into
//! [`remote_scan`], so `cargo test` replays exactly what the fuzzer ran.
//!
//! A body returns `Err(description)` when a promise of this crate fails on the input; a
//! panic inside it is a finding too. Not part of the public API (compiled with the
//! `fuzzing` feature, or in this crate's own tests). No network: the remote file is the
//! fuzz input, served block by block as the open's requests would fetch it.

use std::ops::Range;

use mmappickle::container::{ByteSource, Error, ScanProgress, Scanner, Table};

use crate::cache::BlockCache;

/// What a fuzz body reports when a property fails.
pub type Verdict = Result<(), String>;

/// Block sizes the target picks from: the smallest [`RemoteOptions`] allows, a multiple,
/// and one that is not a power of two.
///
/// [`RemoteOptions`]: crate::RemoteOptions
const BLOCK_SIZES: [u64; 4] = [4096, 8192, 3 * 4096, 5 * 4096];

/// Resumes of one scan past which it is taken to loop (each resume reads at least one more
/// entry or fetches bytes the cache lacked).
const MAX_RESUMES: usize = 1 << 20;

/// `remote_scan` target: the open's scan of a remote file ([`Scanner::resume`] over the
/// block cache, fetching what it asks for), on a file that is `data` after three bytes
/// choosing the block size, the cache budget (2 to 9 blocks, as small as the options allow)
/// and a lie: a server announcing a longer object than the bytes it serves.
///
/// Checked: the scan ends (every range it asks for is held once fetched); when every fetch
/// was answered, its outcome is that of [`mmappickle::container::scan`] on the same bytes;
/// a table describes a file of the announced length.
pub fn remote_scan(data: &[u8]) -> Verdict {
    let [block_choice, budget_choice, lie, ref file @ ..] = *data else {
        return Ok(());
    };
    let block_size = BLOCK_SIZES[usize::from(block_choice) % BLOCK_SIZES.len()];
    let budget = block_size * (2 + u64::from(budget_choice % 8));
    // Half the inputs tell the truth.
    let extra = u64::from(lie.saturating_sub(127));
    let announced = file.len() as u64 + extra;
    let outcome = scan_served(file, announced, block_size, budget)?;
    let Some(outcome) = outcome else {
        // A fetch was refused (its body shorter than the range asked for): the open fails.
        return Ok(());
    };
    // Every byte the scan read was a served one, so the rest of the announced length
    // (never fetched) cannot change the local scan's outcome either.
    let mut whole = file.to_vec();
    whole.resize(file.len() + extra as usize, 0);
    let local = mmappickle::container::scan(&whole[..]);
    compare(&outcome, &local)?;
    if let Ok(table) = &outcome {
        if table.file_len() != announced {
            return Err(format!(
                "table of {} bytes for an object of {announced}",
                table.file_len()
            ));
        }
    }
    Ok(())
}

/// The open's scan (see `AsyncRemoteDict::open_with`) over `served`, announced as
/// `announced` bytes long; `None` when a fetch was refused.
fn scan_served(
    served: &[u8],
    announced: u64,
    block_size: u64,
    budget: u64,
) -> Result<Option<Result<Table, Error>>, String> {
    let mut cache = BlockCache::new(announced, block_size, budget);
    // The open's first request: the first block, or the whole object when shorter.
    let Some(first) = served.get(..announced.min(block_size) as usize) else {
        return Ok(None);
    };
    cache.insert(0, first.to_vec());
    let mut scanner = Scanner::default();
    for _ in 0..MAX_RESUMES {
        let range = match scanner.resume(&cache) {
            Ok(ScanProgress::Done(table)) => return Ok(Some(Ok(table))),
            Err(error) => return Ok(Some(Err(error))),
            Ok(ScanProgress::NeedBytes(range)) => range,
        };
        if range.is_empty() || range.end > announced {
            return Err(format!(
                "the scan asks for {range:?} of a {announced}-byte object"
            ));
        }
        if !load(&mut cache, range.clone(), served) {
            return Ok(None);
        }
        // Else the open would fetch the same blocks forever.
        match cache.bytes_at(range.start, range.end - range.start) {
            Ok(Some(_)) => {}
            held => {
                return Err(format!(
                    "the cache (blocks of {block_size}, budget {budget}) does not hold \
                     {range:?} once fetched: {held:?}"
                ))
            }
        }
    }
    Err(format!("the scan did not end after {MAX_RESUMES} resumes"))
}

/// `RemoteFile::load` with `served` as the object: fetches the blocks of `range` the cache
/// lacks, then joins them. `false` when a block's body would be shorter than its range
/// (the client refuses a body of another length).
fn load(cache: &mut BlockCache, range: Range<u64>, served: &[u8]) -> bool {
    let wanted: Vec<(u64, Range<u64>)> = cache
        .missing_blocks(&range)
        .into_iter()
        .map(|block_idx| (block_idx, cache.block_range(block_idx)))
        .collect();
    let mut fetched = Vec::new();
    for (block_idx, block_range) in wanted {
        let bytes = usize::try_from(block_range.start)
            .ok()
            .zip(usize::try_from(block_range.end).ok())
            .and_then(|(start, end)| served.get(start..end));
        match bytes {
            Some(bytes) => fetched.push((block_idx, bytes.to_vec())),
            None => return false,
        }
    }
    cache.insert_and_join(fetched, range);
    true
}

/// The remote scan and the local scan agree: the same entries, keys and tail, or errors
/// at the same offset with the same message.
fn compare(remote: &Result<Table, Error>, local: &Result<Table, Error>) -> Verdict {
    match (remote, local) {
        (Ok(remote), Ok(local)) => {
            let same = remote.entries() == local.entries()
                && remote.keys().eq(local.keys())
                && remote.commit_number() == local.commit_number()
                && remote.terminator_offset() == local.terminator_offset()
                && remote.file_len() == local.file_len()
                && remote.is_torn() == local.is_torn()
                && remote
                    .overwritten_trailers()
                    .eq(local.overwritten_trailers());
            if same {
                Ok(())
            } else {
                Err(format!(
                    "the remote scan read {remote:?}, the local scan {local:?}"
                ))
            }
        }
        (Err(remote), Err(local))
            if remote.offset() == local.offset() && remote.to_string() == local.to_string() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "the remote scan gave {remote:?}, the local scan {local:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Short inputs, an empty file and a valid one, told truly and with a lie, pass.
    #[test]
    fn short_and_valid_files_pass() {
        let entry = b"\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x8c\x01kK\x2aJ\x01\x00\x00\x000\x880";
        let file = [
            &mmappickle::container::encode_header(1)[..],
            &entry[..],
            &mmappickle::container::TERMINATOR[..],
        ]
        .concat();
        for prefix in [[0u8, 0, 0], [1, 7, 200], [2, 3, 128], [3, 0, 255]] {
            for body in [&b""[..], b"garbage", &file] {
                let input = [&prefix[..], body].concat();
                assert_eq!(remote_scan(&input), Ok(()), "{input:?}");
            }
        }
        assert_eq!(remote_scan(b""), Ok(()));
        assert_eq!(remote_scan(b"\x00\x01"), Ok(()));
    }

    // A file of many blocks, scanned with the smallest budget: the cache drops blocks as
    // the scan goes, and the table is the local scan's.
    #[test]
    fn many_blocks_with_a_small_budget() {
        let mut file = mmappickle::container::encode_header(1).to_vec();
        for entry_idx in 0..40u8 {
            // FRAME, key "k<idx>", BINUNICODE of 1000 bytes, memo 1, live.
            let value: Vec<u8> = [&b"X\xe8\x03\x00\x00"[..], &[b'v'; 1000]].concat();
            let key = [b'k', b'a' + entry_idx % 26, b'0' + entry_idx / 26];
            let mut body = vec![0x8c, key.len() as u8];
            body.extend_from_slice(&key);
            body.extend_from_slice(&value);
            body.extend_from_slice(b"J\x01\x00\x00\x000\x880");
            file.push(0x95);
            file.extend_from_slice(&(body.len() as u64).to_le_bytes());
            file.extend_from_slice(&body);
        }
        file.extend_from_slice(&mmappickle::container::TERMINATOR);
        let table = mmappickle::container::scan(&file[..]).expect("a valid file");
        assert_eq!(table.n_live(), 40);
        for block_choice in 0..4 {
            let input = [&[block_choice, 0, 0][..], &file].concat();
            assert_eq!(remote_scan(&input), Ok(()));
        }
    }
}
