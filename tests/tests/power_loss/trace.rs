//! The trace: strace lines (`-X raw -xx`) to operations on files and names, descriptors
//! followed to their paths and offsets.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A change of the file system, as the crash model sees it. Files are inodes (numbered in
/// the order the trace meets them), names are file names in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Write {
        inode: usize,
        offset: u64,
        data: Vec<u8>,
    },
    SetLen {
        inode: usize,
        len: u64,
    },
    /// `fallocate` without `KEEP_SIZE`: the file grows to at least `len`.
    Extend {
        inode: usize,
        len: u64,
    },
    Create {
        name: String,
        inode: usize,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        name: String,
    },
    SyncFile {
        inode: usize,
    },
    SyncDir,
}

impl Op {
    pub(crate) fn is_sync(&self) -> bool {
        matches!(self, Op::SyncFile { .. } | Op::SyncDir)
    }

    pub(crate) fn is_name_op(&self) -> bool {
        matches!(
            self,
            Op::Create { .. } | Op::Rename { .. } | Op::Unlink { .. }
        )
    }

    /// Whether `sync` makes this operation durable.
    pub(crate) fn synced_by(&self, sync: &Op) -> bool {
        match (self, sync) {
            (
                Op::Write { inode, .. } | Op::SetLen { inode, .. } | Op::Extend { inode, .. },
                Op::SyncFile { inode: synced },
            ) => inode == synced,
            (_, Op::SyncDir) => self.is_name_op(),
            _ => false,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Op::Write {
                inode,
                offset,
                data,
            } => format!(
                "write of {} bytes at {offset} (to {}) into file #{inode}",
                data.len(),
                offset + data.len() as u64
            ),
            Op::SetLen { inode, len } => format!("ftruncate of file #{inode} to {len}"),
            Op::Extend { inode, len } => format!("fallocate of file #{inode} to {len}"),
            Op::Create { name, inode } => format!("create {name:?} (file #{inode})"),
            Op::Rename { from, to } => format!("rename {from:?} -> {to:?}"),
            Op::Unlink { name } => format!("unlink {name:?}"),
            Op::SyncFile { inode } => format!("fsync of file #{inode}"),
            Op::SyncDir => "fsync of the directory".to_owned(),
        }
    }
}

/// What a traced descriptor refers to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    File { inode: usize, position: u64 },
    Dir,
}

/// Reads a trace of `strace -f -X raw -xx -s N` into the operations on the directory `dir`
/// (whose files at the start are `initial`, numbered as inodes in name order). Calls on other
/// paths and descriptors are skipped; a call this model does not know on a tracked
/// descriptor is an error.
#[derive(Debug)]
pub(crate) struct TraceReader {
    pub(crate) dir: String,
    pub(crate) names: BTreeMap<String, usize>,
    pub(crate) n_inodes: usize,
    pub(crate) descriptors: HashMap<i64, Target>,
    /// Calls cut by another thread's (`<unfinished ...>`), by process id.
    pub(crate) unfinished: HashMap<String, String>,
    pub(crate) ops: Vec<Op>,
}

/// One argument of a traced call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Bytes(Vec<u8>),
    Int(i64),
    Other(String),
}

impl TraceReader {
    pub(crate) fn new(dir: &Path, initial: &[String]) -> TraceReader {
        let names: BTreeMap<String, usize> = initial
            .iter()
            .enumerate()
            .map(|(inode, name)| (name.clone(), inode))
            .collect();
        TraceReader {
            dir: dir.to_string_lossy().trim_end_matches('/').to_owned(),
            n_inodes: names.len(),
            names,
            descriptors: HashMap::new(),
            unfinished: HashMap::new(),
            ops: Vec::new(),
        }
    }

    pub(crate) fn read(&mut self, trace: &str) -> Result<(), String> {
        for (line_idx, line) in trace.lines().enumerate() {
            self.line(line)
                .map_err(|e| format!("trace line {}: {e}: {}", line_idx + 1, clip(line)))?;
        }
        if let Some((pid, call)) = self.unfinished.iter().next() {
            return Err(format!(
                "process {pid} never finished the call {}",
                clip(call)
            ));
        }
        Ok(())
    }

    pub(crate) fn line(&mut self, line: &str) -> Result<(), String> {
        let line = line.trim_end();
        let (pid, rest) = match line.split_once(' ') {
            Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => (pid, rest.trim()),
            _ => ("", line),
        };
        if rest.starts_with("+++") || rest.starts_with("---") || rest.is_empty() {
            return Ok(());
        }
        if let Some(start) = rest.strip_suffix("<unfinished ...>") {
            self.unfinished
                .insert(pid.to_owned(), start.trim_end().to_owned());
            return Ok(());
        }
        let whole;
        let call = if let Some(resumed) = rest.strip_prefix("<... ") {
            let (_, tail) = resumed
                .split_once(" resumed>")
                .ok_or("a resumed call without `resumed>`")?;
            let start = self
                .unfinished
                .remove(pid)
                .ok_or("a resumed call that never started")?;
            whole = format!("{start}{tail}");
            whole.as_str()
        } else {
            rest
        };
        self.call(call)
    }

    pub(crate) fn call(&mut self, call: &str) -> Result<(), String> {
        let open = call.find('(').ok_or("no `(`")?;
        let name = &call[..open];
        // The `)` closing the arguments, then (after alignment spaces) `= RESULT [ERRNO (text)]`.
        let (close, result_part) = call
            .match_indices(')')
            .rev()
            .find_map(|(idx, _)| Some((idx, call[idx + 1..].trim_start().strip_prefix("= ")?)))
            .ok_or("no result")?;
        let result_text = result_part.split_whitespace().next().unwrap_or("");
        let result: i64 = if result_text == "?" {
            -1
        } else {
            parse_int(result_text).ok_or_else(|| format!("result {result_text:?}"))?
        };
        let args = parse_args(&call[open + 1..close])?;
        if result < 0 {
            // A failed call changed nothing (`unlink` of a missing scratch file, say).
            return Ok(());
        }
        let int = |idx: usize| match args.get(idx) {
            Some(Arg::Int(value)) => Ok(*value),
            other => Err(format!("argument {idx} of {name}: {other:?}, not a number")),
        };
        let bytes = |idx: usize| match args.get(idx) {
            Some(Arg::Bytes(bytes)) => Ok(bytes.clone()),
            other => Err(format!("argument {idx} of {name}: {other:?}, not a string")),
        };
        let at_cwd = |idx: usize| -> Result<(), String> {
            match int(idx)? {
                -100 => Ok(()),
                fd if self.descriptors.contains_key(&fd) => {
                    Err(format!("{name} relative to a traced descriptor"))
                }
                _ => Ok(()),
            }
        };
        match name {
            "openat" => {
                at_cwd(0)?;
                self.opened(&bytes(1)?, int(2)?, result)
            }
            "open" => self.opened(&bytes(0)?, int(1)?, result),
            // creat(path, mode) is open(path, O_CREAT | O_WRONLY | O_TRUNC, mode).
            "creat" => self.opened(&bytes(0)?, 0o1101, result),
            "close" => {
                self.descriptors.remove(&int(0)?);
                Ok(())
            }
            "lseek" => {
                if let Some(Target::File { position, .. }) = self.descriptors.get_mut(&int(0)?) {
                    *position = result as u64;
                }
                Ok(())
            }
            "pwrite64" => {
                if let Some(inode) = self.file_of(int(0)?)? {
                    let data = bytes(1)?;
                    self.write(inode, int(3)? as u64, &data, result)?;
                }
                Ok(())
            }
            "write" => {
                let fd = int(0)?;
                if let Some(Target::File { inode, position }) = self.descriptors.get(&fd).copied() {
                    let data = bytes(1)?;
                    self.write(inode, position, &data, result)?;
                    self.descriptors.insert(
                        fd,
                        Target::File {
                            inode,
                            position: position + result as u64,
                        },
                    );
                } else if matches!(self.descriptors.get(&fd), Some(Target::Dir)) {
                    return Err("write to a directory".to_owned());
                }
                Ok(())
            }
            "ftruncate" => {
                if let Some(inode) = self.file_of(int(0)?)? {
                    let len = int(1)? as u64;
                    self.ops.push(Op::SetLen { inode, len });
                }
                Ok(())
            }
            "fallocate" => {
                if let Some(inode) = self.file_of(int(0)?)? {
                    const KEEP_SIZE: i64 = 1;
                    let (mode, offset, len) = (int(1)?, int(2)?, int(3)?);
                    match mode {
                        // Space only: no byte and no length changes.
                        KEEP_SIZE => {}
                        0 => self.ops.push(Op::Extend {
                            inode,
                            len: (offset + len) as u64,
                        }),
                        _ => return Err(format!("fallocate mode {mode:#x} is not modelled")),
                    }
                }
                Ok(())
            }
            "fsync" | "fdatasync" => {
                match self.descriptors.get(&int(0)?) {
                    Some(Target::File { inode, .. }) => {
                        self.ops.push(Op::SyncFile { inode: *inode })
                    }
                    Some(Target::Dir) => self.ops.push(Op::SyncDir),
                    None => {}
                }
                Ok(())
            }
            "rename" => self.renamed(&bytes(0)?, &bytes(1)?),
            "renameat" | "renameat2" => {
                at_cwd(0)?;
                at_cwd(2)?;
                if name == "renameat2" && int(4)? != 0 {
                    return Err("renameat2 flags are not modelled".to_owned());
                }
                self.renamed(&bytes(1)?, &bytes(3)?)
            }
            "unlink" => self.unlinked(&bytes(0)?),
            "unlinkat" => {
                at_cwd(0)?;
                self.unlinked(&bytes(1)?)
            }
            "pwritev" | "pwritev2" | "writev" | "copy_file_range" | "sendfile" | "splice" => {
                let touches = args.iter().any(|arg| match arg {
                    Arg::Int(fd) => self.descriptors.contains_key(fd),
                    _ => false,
                });
                if touches {
                    Err(format!("{name} on a traced file is not modelled"))
                } else {
                    Ok(())
                }
            }
            _ => Err(format!("{name} was not asked for")),
        }
    }

    /// The file name in the directory that `path` names, `Ok(None)` for a path elsewhere.
    pub(crate) fn name_in_dir(&self, path: &[u8]) -> Result<Option<String>, String> {
        let path = String::from_utf8(path.to_vec()).map_err(|_| "a path of invalid UTF-8")?;
        let path = if path.starts_with('/') {
            path
        } else {
            // The child runs in `/`.
            format!("/{path}")
        };
        let path = path.trim_end_matches('/');
        if path == self.dir {
            return Ok(Some(String::new()));
        }
        match path
            .strip_prefix(&self.dir)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(name) if !name.contains('/') && name != "." && name != ".." => {
                Ok(Some(name.to_owned()))
            }
            Some(name) => Err(format!("{name:?} is not a plain name in the directory")),
            None => Ok(None),
        }
    }

    pub(crate) fn opened(&mut self, path: &[u8], flags: i64, fd: i64) -> Result<(), String> {
        const O_CREAT: i64 = 0o100;
        const O_TRUNC: i64 = 0o1000;
        const O_APPEND: i64 = 0o2000;
        let Some(name) = self.name_in_dir(path)? else {
            self.descriptors.remove(&fd);
            return Ok(());
        };
        if name.is_empty() {
            self.descriptors.insert(fd, Target::Dir);
            return Ok(());
        }
        if flags & O_APPEND != 0 {
            return Err("O_APPEND is not modelled".to_owned());
        }
        let inode = match self.names.get(&name) {
            Some(&inode) => {
                if flags & O_TRUNC != 0 {
                    self.ops.push(Op::SetLen { inode, len: 0 });
                }
                inode
            }
            None if flags & O_CREAT != 0 => {
                let inode = self.n_inodes;
                self.n_inodes += 1;
                self.names.insert(name.clone(), inode);
                self.ops.push(Op::Create { name, inode });
                inode
            }
            None => return Err(format!("{name:?} opened, but it does not exist")),
        };
        self.descriptors
            .insert(fd, Target::File { inode, position: 0 });
        Ok(())
    }

    pub(crate) fn file_of(&self, fd: i64) -> Result<Option<usize>, String> {
        match self.descriptors.get(&fd) {
            Some(Target::File { inode, .. }) => Ok(Some(*inode)),
            Some(Target::Dir) => Err("a file operation on the directory".to_owned()),
            None => Ok(None),
        }
    }

    pub(crate) fn write(
        &mut self,
        inode: usize,
        offset: u64,
        data: &[u8],
        written: i64,
    ) -> Result<(), String> {
        let written = usize::try_from(written).map_err(|_| "a negative count")?;
        let data = data
            .get(..written)
            .ok_or("more bytes written than the buffer holds (is -s too small?)")?;
        if !data.is_empty() {
            self.ops.push(Op::Write {
                inode,
                offset,
                data: data.to_vec(),
            });
        }
        Ok(())
    }

    pub(crate) fn renamed(&mut self, from: &[u8], to: &[u8]) -> Result<(), String> {
        match (self.name_in_dir(from)?, self.name_in_dir(to)?) {
            (None, None) => Ok(()),
            (Some(from), Some(to)) if !from.is_empty() && !to.is_empty() => {
                let inode = self
                    .names
                    .remove(&from)
                    .ok_or_else(|| format!("rename of {from:?}, which does not exist"))?;
                self.names.insert(to.clone(), inode);
                self.ops.push(Op::Rename { from, to });
                Ok(())
            }
            _ => Err("a rename into or out of the directory".to_owned()),
        }
    }

    pub(crate) fn unlinked(&mut self, path: &[u8]) -> Result<(), String> {
        match self.name_in_dir(path)? {
            None => Ok(()),
            Some(name) if !name.is_empty() => {
                self.names.remove(&name);
                self.ops.push(Op::Unlink { name });
                Ok(())
            }
            Some(_) => Err("unlink of the directory".to_owned()),
        }
    }
}

pub(crate) fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -value } else { value })
}

/// The arguments of a call printed with `-xx` (every string byte as `\xNN`).
pub(crate) fn parse_args(text: &str) -> Result<Vec<Arg>, String> {
    let bytes = text.as_bytes();
    let mut args = Vec::new();
    let mut idx = 0;
    while idx < bytes.len() {
        while bytes.get(idx) == Some(&b' ') {
            idx += 1;
        }
        if bytes.get(idx) == Some(&b'"') {
            idx += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(idx..idx + 4) {
                    Some([b'\\', b'x', high, low]) => {
                        let hex = [*high, *low];
                        let hex = std::str::from_utf8(&hex).map_err(|_| "a bad escape")?;
                        value.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad escape")?);
                        idx += 4;
                    }
                    _ if bytes.get(idx) == Some(&b'"') => {
                        idx += 1;
                        break;
                    }
                    _ => return Err("a string not printed with -xx".to_owned()),
                }
            }
            if bytes.get(idx..idx + 3) == Some(b"...") {
                return Err("a string cut short (is -s too small?)".to_owned());
            }
            args.push(Arg::Bytes(value));
        } else {
            let start = idx;
            let mut depth = 0i32;
            while let Some(&byte) = bytes.get(idx) {
                match byte {
                    b'{' | b'[' | b'(' => depth += 1,
                    b'}' | b']' | b')' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                idx += 1;
            }
            let token = text[start..idx].trim();
            args.push(match parse_int(token) {
                Some(value) => Arg::Int(value),
                None => Arg::Other(token.to_owned()),
            });
        }
        while bytes.get(idx) == Some(&b' ') {
            idx += 1;
        }
        match bytes.get(idx) {
            Some(b',') => idx += 1,
            None => {}
            Some(_) => return Err(format!("unexpected text at {idx} of the arguments")),
        }
    }
    Ok(args)
}
