//! Values and the model of each change: the dicts it may leave (`Expectation`), and the
//! change itself through the facade.

use std::collections::BTreeMap;
use std::path::Path;

use mmappickle::{codec, Durability, EmptyArray, Item, MmapDict, Value};

use crate::kinds::{Kind, Scenario};
use crate::{DATA_NAME, SECTOR};

/// What a key holds, compared byte for byte.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Held {
    Value(Value),
    Array {
        dtype: String,
        shape: Vec<usize>,
        data: Vec<u8>,
    },
}

pub(crate) type Dict = BTreeMap<String, Held>;

pub(crate) fn small_value(seed: u64) -> Value {
    Value::List(vec![
        Value::from(format!("value {seed} é")),
        Value::Int(seed as i64 * 7 - 3),
        Value::Bytes((0..40).map(|i| (i as u64 * 13 + seed) as u8).collect()),
    ])
}

/// `n` float64 values that differ from those of any other seed.
pub(crate) fn floats(seed: u64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (seed * 1_000_003 + i as u64) as f64 * 0.5)
        .collect()
}

pub(crate) fn float_array(seed: u64, n: usize) -> Held {
    Held::Array {
        dtype: "float64".to_owned(),
        shape: vec![n],
        data: floats(seed, n)
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    }
}

/// The shape of the stub of a scenario of `size` bytes.
pub(crate) fn stub_shape(size: usize) -> [usize; 2] {
    [size / 64, 8]
}

/// The entries every initial file starts with.
pub(crate) fn base_entries(seed: u64) -> Vec<(String, Held)> {
    vec![
        ("k0".to_owned(), Held::Value(Value::from("zero"))),
        (
            "k1".to_owned(),
            Held::Value(Value::from(vec![1i64, 2, seed as i64])),
        ),
        ("k2".to_owned(), float_array(seed + 100, 40)),
        ("k3".to_owned(), Held::Value(Value::Bytes(vec![7; 300]))),
    ]
}

pub(crate) fn insert_held(
    dict: &mut MmapDict,
    key: &str,
    held: &Held,
) -> Result<(), mmappickle::Error> {
    match held {
        Held::Value(value) => dict.insert(key, value.clone()),
        Held::Array { data, shape, .. } => {
            let values: Vec<f64> = data
                .chunks_exact(8)
                .map(|chunk| f64::from_le_bytes(chunk.try_into().unwrap_or_default()))
                .collect();
            dict.insert_array(key, &values, shape)
        }
    }
}

/// The value a replace or a batch puts under `k1` (generic) or `k2` (array) for `seed`.
pub(crate) fn replacement(seed: u64, size: usize) -> (&'static str, Held) {
    if seed % 2 == 1 {
        ("k2", float_array(seed + 50, size / 8))
    } else {
        ("k1", Held::Value(small_value(seed + 50)))
    }
}

/// What the change does, as the test sees it: the dicts a state may hold.
#[derive(Debug, Clone)]
pub(crate) struct Expectation {
    /// The dict before the change (acknowledged before it began).
    pub(crate) before: Dict,
    /// The dict after it (acknowledged when it returned).
    pub(crate) after: Dict,
    /// A batch: its inserts and replaces, without its removes of keys that were there
    /// before; a state may hold these with any subset of the removes done.
    pub(crate) batch_removes: Option<(Dict, Vec<String>)>,
}

impl Expectation {
    /// Whether `dict` is allowed: while the change is in flight (`returned` false) the dict
    /// before or after it (a batch: also its inserts with any subset of its removes); once
    /// it returned, only the dict after.
    pub(crate) fn check(&self, dict: &Dict, returned: bool) -> Result<(), String> {
        if dict == &self.after {
            return Ok(());
        }
        if returned {
            return Err(format!(
                "the change had returned, yet the dict differs from its result: {}",
                describe_difference(dict, &self.after)
            ));
        }
        if dict == &self.before {
            return Ok(());
        }
        if let Some((committed, removes)) = &self.batch_removes {
            let partial = committed.iter().all(|(key, held)| {
                dict.get(key) == Some(held) || (removes.contains(key) && !dict.contains_key(key))
            }) && dict.keys().all(|key| committed.contains_key(key));
            if partial {
                return Ok(());
            }
        }
        Err(format!(
            "neither the dict before nor the one after: against before, {}; against after, {}",
            describe_difference(dict, &self.before),
            describe_difference(dict, &self.after)
        ))
    }
}

/// What differs between `found` and `wanted`, key by key (values shortened).
pub(crate) fn describe_difference(found: &Dict, wanted: &Dict) -> String {
    let mut parts = Vec::new();
    for (key, held) in found {
        match wanted.get(key) {
            None => parts.push(format!("{key:?} present but not expected")),
            Some(other) if other != held => {
                parts.push(format!("{key:?} holds {} instead", short(held)))
            }
            _ => {}
        }
    }
    for key in wanted.keys() {
        if !found.contains_key(key) {
            parts.push(format!("{key:?} missing"));
        }
    }
    if parts.is_empty() {
        "the same".to_owned()
    } else {
        parts.join(", ")
    }
}

pub(crate) fn short(held: &Held) -> String {
    let text = format!("{held:?}");
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

pub(crate) fn dict_of(entries: &[(String, Held)]) -> Dict {
    entries.iter().cloned().collect()
}

/// The initial directory of `scenario` built in `dir` (no strace), and what the change must
/// do to it.
pub(crate) fn prepare(scenario: &Scenario, dir: &Path) -> Result<Expectation, String> {
    let path = dir.join(DATA_NAME);
    let seed = scenario.seed;
    let error = |what: &str, e: mmappickle::Error| format!("preparing {what}: {e}");
    match scenario.kind {
        Kind::Create => {
            return Ok(Expectation {
                before: Dict::new(),
                after: dict_of(&[("new".to_owned(), Held::Value(small_value(seed)))]),
                batch_removes: None,
            })
        }
        Kind::Convert => {
            // What `pickle.dump(d, f, 4)` of a dict of generic values writes.
            let pairs: Vec<(String, Held)> = base_entries(seed)
                .into_iter()
                .filter(|(_, held)| matches!(held, Held::Value(_)))
                .chain([("new".to_owned(), Held::Value(small_value(seed)))])
                .collect();
            let dict = Value::Dict(
                pairs
                    .iter()
                    .filter_map(|(key, held)| match held {
                        Held::Value(value) => Some((Value::from(key.as_str()), value.clone())),
                        Held::Array { .. } => None,
                    })
                    .collect(),
            );
            std::fs::write(&path, codec::dumps(&dict)).map_err(|e| e.to_string())?;
            let converted = dict_of(&pairs);
            return Ok(Expectation {
                before: converted.clone(),
                after: converted,
                batch_removes: None,
            });
        }
        _ => {}
    }
    let mut entries = base_entries(seed);
    // Vacuum needs entries to drop: removed keys and a replaced one.
    let mut doomed = Vec::new();
    if scenario.kind == Kind::Vacuum {
        doomed = (0..3)
            .map(|i| (format!("gone{i}"), Held::Value(small_value(seed + i))))
            .collect();
    }
    let filler_for = |len: usize| {
        (
            "filler".to_owned(),
            Held::Value(Value::Bytes(vec![b'f'; len])),
        )
    };
    // Build with a filler that puts the old terminator `split` bytes before a sector
    // boundary, trying lengths until the page rule (padding near 4 KiB boundaries) agrees.
    let build = |filler_len: usize| -> Result<u64, String> {
        let _ = std::fs::remove_file(&path);
        let mut dict = MmapDict::open(&path).map_err(|e| error("open", e))?;
        for (key, held) in entries.iter().chain(&doomed) {
            insert_held(&mut dict, key, held).map_err(|e| error("insert", e))?;
        }
        for (key, _) in &doomed {
            dict.remove(key).map_err(|e| error("remove", e))?;
        }
        if scenario.kind == Kind::Vacuum {
            let (key, held) = &entries[1];
            insert_held(&mut dict, key, held).map_err(|e| error("replace", e))?;
        }
        let (key, held) = filler_for(filler_len);
        insert_held(&mut dict, &key, &held).map_err(|e| error("filler", e))?;
        drop(dict);
        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        Ok(len - 11)
    };
    let want = if scenario.split == 0 {
        100
    } else {
        SECTOR - scenario.split
    };
    let probe = build(300)?;
    let mut filler_len = 300 + ((want + SECTOR - probe % SECTOR) % SECTOR) as usize;
    let mut placed = false;
    for _ in 0..8 {
        if build(filler_len)? % SECTOR == want {
            placed = true;
            break;
        }
        filler_len += SECTOR as usize;
    }
    if !placed {
        return Err(format!(
            "no filler puts the terminator at {want} mod {SECTOR}"
        ));
    }
    entries.push(filler_for(filler_len));
    let before = dict_of(&entries);
    let mut after = before.clone();
    let mut batch_removes = None;
    match scenario.kind {
        Kind::Insert => {
            after.insert("new".to_owned(), Held::Value(small_value(seed)));
        }
        Kind::InsertPages => {
            after.insert("new".to_owned(), float_array(seed, scenario.size / 8));
        }
        Kind::Replace => {
            let (key, held) = replacement(seed, scenario.size);
            after.insert(key.to_owned(), held);
        }
        Kind::Remove => {
            after.remove("k1");
        }
        Kind::Batch => {
            let (key, held) = replacement(seed, scenario.size);
            after.insert(key.to_owned(), held);
            after.insert("b0".to_owned(), Held::Value(small_value(seed + 1)));
            after.insert("b1".to_owned(), float_array(seed + 2, 100));
            let committed = after.clone();
            after.remove("k0");
            after.remove("k3");
            batch_removes = Some((committed, vec!["k0".to_owned(), "k3".to_owned()]));
        }
        Kind::Stub => {
            let shape = stub_shape(scenario.size);
            after.insert(
                "new".to_owned(),
                Held::Array {
                    dtype: "float64".to_owned(),
                    shape: shape.to_vec(),
                    data: vec![0; shape[0] * shape[1] * 8],
                },
            );
        }
        Kind::Fsck => {
            // A last entry torn: cut in its value (dropped by fsck, size 0) or in its
            // trailer (completed, size 1).
            let torn = Held::Value(Value::Bytes(vec![b't'; 200]));
            let mut dict = MmapDict::open(&path).map_err(|e| error("open", e))?;
            insert_held(&mut dict, "torn", &torn).map_err(|e| error("torn", e))?;
            drop(dict);
            let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
            let cut = if scenario.size == 0 { 11 + 8 + 50 } else { 15 };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| e.to_string())?;
            file.set_len(len - cut).map_err(|e| e.to_string())?;
            if scenario.size != 0 {
                after.insert("torn".to_owned(), torn);
            }
            return Ok(Expectation {
                before: after.clone(),
                after,
                batch_removes: None,
            });
        }
        Kind::Vacuum | Kind::Create | Kind::Convert => {}
    }
    Ok(Expectation {
        before,
        after,
        batch_removes,
    })
}

/// The change of a job, made with `Durability::Flush` (the child's body).
pub(crate) fn perform(
    kind: Kind,
    seed: u64,
    size: usize,
    path: &Path,
) -> Result<(), mmappickle::Error> {
    let options = MmapDict::options().durability(Durability::Flush);
    if kind == Kind::Fsck {
        options.allow_damaged(true).open(path)?.fsck()?;
        return Ok(());
    }
    let mut dict = options.open(path)?;
    match kind {
        Kind::Insert | Kind::Create => dict.insert("new", small_value(seed)),
        Kind::InsertPages => dict.insert_array("new", &floats(seed, size / 8), &[size / 8]),
        Kind::Replace => {
            let (key, held) = replacement(seed, size);
            insert_held(&mut dict, key, &held)
        }
        Kind::Remove => dict.remove("k1").map(|_| ()),
        Kind::Batch => dict.write(|tx| {
            tx.insert("b0", small_value(seed + 1))?;
            match replacement(seed, size) {
                (key, Held::Value(value)) => tx.insert(key, value)?,
                (key, Held::Array { shape, .. }) => {
                    tx.insert_array(key, &floats(seed + 50, shape[0]), &shape)?
                }
            }
            tx.remove("k0")?;
            tx.insert_array("b1", &floats(seed + 2, 100), &[100])?;
            tx.remove("k3")?;
            Ok(())
        }),
        Kind::Vacuum => dict.vacuum().map(|_| ()),
        Kind::Stub => dict.insert_stub("new", EmptyArray::new::<f64>(&stub_shape(size))),
        // Opening converted it.
        Kind::Convert => Ok(()),
        Kind::Fsck => Ok(()),
    }
}

/// Every live key of `dict` with what it holds.
pub(crate) fn read_dict(dict: &MmapDict) -> Result<Dict, String> {
    let mut read = Dict::new();
    for entry in dict.iter().map_err(|e| format!("listing: {e}"))? {
        let (key, item) = entry.map_err(|e| format!("reading a key: {e}"))?;
        let held = match item {
            Item::Value(value) => Held::Value(value),
            Item::Array(map) => Held::Array {
                dtype: map.dtype().name(),
                shape: map.shape().to_vec(),
                data: map.bytes().to_vec(),
            },
            Item::Masked(_) | Item::Other(_) => {
                return Err(format!("{key:?}: {item:?}, never written here"))
            }
        };
        if read.insert(key.clone(), held).is_some() {
            return Err(format!("{key:?} listed twice"));
        }
    }
    Ok(read)
}
