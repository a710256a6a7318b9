//! Random plans of operations, and the model: what the dict holds after a plan's steps.

use std::collections::BTreeMap;

use mmappickle::{EmptyArray, Item, MmapDict, Value};

/// SplitMix64: a small deterministic generator, so that the parent can replay the child's plan.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a key holds, as the model and as read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    Generic(Value),
    /// An array (or a stub, whose raw bytes are zeros): numpy's dtype name, shape, raw bytes.
    Array {
        dtype: String,
        shape: Vec<usize>,
        raw: Vec<u8>,
    },
}

/// An array to insert, typed.
#[derive(Debug, Clone)]
pub(crate) enum ArrayData {
    U8(Vec<u8>),
    I32(Vec<i32>),
    F64(Vec<f64>),
}

impl ArrayData {
    pub(crate) fn content(&self, shape: &[usize]) -> Content {
        let (dtype, raw) = match self {
            ArrayData::U8(data) => ("uint8", data.clone()),
            ArrayData::I32(data) => ("int32", bytemuck::cast_slice(data).to_vec()),
            ArrayData::F64(data) => ("float64", bytemuck::cast_slice(data).to_vec()),
        };
        Content::Array {
            dtype: dtype.to_owned(),
            shape: shape.to_vec(),
            raw,
        }
    }
}

/// One operation of a crash plan.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Insert(String, Value),
    InsertArray(String, ArrayData, Vec<usize>),
    Remove(String),
    /// A float64 (`f64: true`) or int32 stub of this shape.
    InsertStub(String, bool, Vec<usize>),
    Vacuum,
    /// Several inserts and removes in one batch (`MmapDict::write`).
    Batch(Vec<Op>),
}

impl Op {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Op::Insert(..) => "insert",
            Op::InsertArray(..) => "array",
            Op::Remove(..) => "remove",
            Op::InsertStub(..) => "stub",
            Op::Vacuum => "vacuum",
            Op::Batch(..) => "batch",
        }
    }
}

/// The keys a plan draws from: few, so that inserts often replace; some not ASCII.
fn plan_key(rng: &mut Rng) -> String {
    let n = rng.below(12);
    if n < 8 {
        format!("k{n}")
    } else {
        format!("clé-{n}")
    }
}

fn random_string(rng: &mut Rng) -> String {
    let len = rng.below(40);
    (0..len)
        .map(|_| match rng.below(10) {
            0 => 'é',
            1 => '€',
            2 => '𝄞',
            _ => char::from(b'a' + rng.below(26) as u8),
        })
        .collect()
}

/// A random generic value, nested at most `depth` levels.
fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let scalar_kinds = 6;
    let kinds = if depth == 0 { scalar_kinds } else { 9 };
    match rng.below(kinds) {
        0 => Value::None,
        1 => Value::Bool(rng.chance(50)),
        2 => Value::Int(rng.next_u64() as i64 >> rng.below(64)),
        3 => Value::Float((rng.next_u64() as i32) as f64 / 7.0),
        4 => Value::Str(random_string(rng)),
        5 => {
            let len = if rng.chance(10) { 5000 } else { rng.below(300) };
            Value::Bytes((0..len).map(|_| rng.next_u64() as u8).collect())
        }
        6 => Value::List(
            (0..rng.below(8))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        7 => Value::Tuple(
            (0..rng.below(5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Dict(
            (0..rng.below(6))
                .map(|idx| {
                    let key = Value::Str(format!("{}{idx}", random_string(rng)));
                    (key, random_value(rng, depth - 1))
                })
                .collect(),
        ),
    }
}

fn random_shape(rng: &mut Rng, max_dim: u64) -> Vec<usize> {
    (0..1 + rng.below(2))
        .map(|_| 1 + rng.below(max_dim) as usize)
        .collect()
}

/// The `step`-th operation of the plan of `seed` (independent of the other steps).
pub(crate) fn planned_op(seed: u64, step: u64) -> Op {
    let mut rng = Rng::new(seed ^ step.wrapping_mul(0xa076_1d64_78bd_642f));
    let roll = rng.below(100);
    let key = plan_key(&mut rng);
    match roll {
        0..=7 => {
            // Never a vacuum inside; any mix of the other operations, on few keys.
            let mut draw = step.wrapping_mul(1 << 12);
            let ops = (0..2 + rng.below(12))
                .map(|_| loop {
                    draw += 1;
                    let op = planned_op(seed ^ 0x5bd1_e995, draw);
                    if !matches!(op, Op::Vacuum | Op::Batch(_)) {
                        break op;
                    }
                })
                .collect();
            Op::Batch(ops)
        }
        8..=37 => Op::Insert(key, random_value(&mut rng, 3)),
        38..=62 => {
            // Now and then a bigger array, so that kills land inside value writes.
            let max_dim = if rng.chance(15) { 400 } else { 40 };
            let shape = random_shape(&mut rng, max_dim);
            let n: usize = shape.iter().product();
            let data = match rng.below(3) {
                0 => ArrayData::U8((0..n).map(|_| rng.next_u64() as u8).collect()),
                1 => ArrayData::I32((0..n).map(|_| rng.next_u64() as i32).collect()),
                _ => ArrayData::F64(
                    (0..n)
                        .map(|_| (rng.next_u64() as i32) as f64 / 3.0)
                        .collect(),
                ),
            };
            Op::InsertArray(key, data, shape)
        }
        63..=81 => Op::Remove(key),
        82..=97 => Op::InsertStub(key, rng.chance(50), random_shape(&mut rng, 200)),
        _ => Op::Vacuum,
    }
}

pub(crate) fn apply_to_model(model: &mut BTreeMap<String, Content>, op: &Op) {
    match op {
        Op::Insert(key, value) => {
            model.insert(key.clone(), Content::Generic(value.clone()));
        }
        Op::InsertArray(key, data, shape) => {
            model.insert(key.clone(), data.content(shape));
        }
        Op::Remove(key) => {
            model.remove(key);
        }
        Op::InsertStub(key, f64_elements, shape) => {
            let (dtype, item_size) = if *f64_elements {
                ("float64", 8)
            } else {
                ("int32", 4)
            };
            let n: usize = shape.iter().product();
            let content = Content::Array {
                dtype: dtype.to_owned(),
                shape: shape.clone(),
                raw: vec![0; n * item_size],
            };
            model.insert(key.clone(), content);
        }
        Op::Vacuum => {}
        Op::Batch(ops) => {
            for op in ops {
                apply_to_model(model, op);
            }
        }
    }
}

/// The states a kill inside `op` may leave, besides `before` and the state after `op`: a
/// batch's inserts and replaces commit together, then its removes of keys that were in the
/// file are done one by one in the order asked, so a kill between them leaves the batch's
/// result with the keys of the removes not yet done still there.
pub(crate) fn partial_states(
    before: &BTreeMap<String, Content>,
    op: &Op,
) -> Vec<BTreeMap<String, Content>> {
    let Op::Batch(ops) = op else {
        return Vec::new();
    };
    let mut after = before.clone();
    apply_to_model(&mut after, op);
    // The committed keys in the order the batch retires their entries (a remove, or the
    // insert that replaces them): the order of the live-flag flips after the commit.
    let mut retired: Vec<&String> = Vec::new();
    for op in ops {
        let key = match op {
            Op::Insert(key, _)
            | Op::InsertArray(key, ..)
            | Op::Remove(key)
            | Op::InsertStub(key, ..) => key,
            Op::Vacuum | Op::Batch(_) => continue,
        };
        if before.contains_key(key) && !retired.contains(&key) {
            retired.push(key);
        }
    }
    let removed: Vec<&String> = retired
        .into_iter()
        .filter(|key| !after.contains_key(*key))
        .collect();
    (0..removed.len())
        .map(|flipped| {
            let mut state = after.clone();
            for key in removed.iter().skip(flipped) {
                state.insert((*key).clone(), before[*key].clone());
            }
            state
        })
        .collect()
}

pub(crate) fn apply_to_dict(dict: &mut MmapDict, op: &Op) -> Result<(), mmappickle::Error> {
    match op {
        Op::Insert(key, value) => dict.insert(key, value.clone()),
        Op::InsertArray(key, ArrayData::U8(data), shape) => dict.insert_array(key, data, shape),
        Op::InsertArray(key, ArrayData::I32(data), shape) => dict.insert_array(key, data, shape),
        Op::InsertArray(key, ArrayData::F64(data), shape) => dict.insert_array(key, data, shape),
        Op::Remove(key) => dict.remove(key).map(drop),
        Op::InsertStub(key, true, shape) => dict.insert_stub(key, EmptyArray::new::<f64>(shape)),
        Op::InsertStub(key, false, shape) => dict.insert_stub(key, EmptyArray::new::<i32>(shape)),
        Op::Vacuum => dict.vacuum().map(drop),
        Op::Batch(ops) => dict.write(|tx| {
            for op in ops {
                match op {
                    Op::Insert(key, value) => tx.insert(key, value.clone())?,
                    Op::InsertArray(key, ArrayData::U8(data), shape) => {
                        tx.insert_array(key, data, shape)?
                    }
                    Op::InsertArray(key, ArrayData::I32(data), shape) => {
                        tx.insert_array(key, data, shape)?
                    }
                    Op::InsertArray(key, ArrayData::F64(data), shape) => {
                        tx.insert_array(key, data, shape)?
                    }
                    Op::Remove(key) => drop(tx.remove(key)?),
                    Op::InsertStub(key, true, shape) => {
                        tx.insert_stub(key, EmptyArray::new::<f64>(shape))?
                    }
                    Op::InsertStub(key, false, shape) => {
                        tx.insert_stub(key, EmptyArray::new::<i32>(shape))?
                    }
                    Op::Vacuum | Op::Batch(_) => unreachable!("no vacuum or batch in a batch"),
                }
            }
            Ok(())
        }),
    }
}

/// The model after the first `steps` operations of the plan of `seed`.
pub(crate) fn model_after(seed: u64, steps: u64) -> BTreeMap<String, Content> {
    let mut model = BTreeMap::new();
    for step in 0..steps {
        apply_to_model(&mut model, &planned_op(seed, step));
    }
    model
}

/// Every live key of `dict` and what it holds, read through `get` (arrays through maps).
pub(crate) fn read_state(
    dict: &mut MmapDict,
) -> Result<BTreeMap<String, Content>, mmappickle::Error> {
    let mut state = BTreeMap::new();
    for key in dict.keys()? {
        let content = match dict.get(&key)? {
            Item::Value(value) => Content::Generic(value),
            Item::Array(map) => Content::Array {
                dtype: map.dtype().name(),
                shape: map.shape().to_vec(),
                raw: map.bytes().to_vec(),
            },
            Item::Masked(_) => Content::Generic(Value::Str("<a masked array>".to_owned())),
            Item::Other(other) => Content::Generic(Value::Str(format!("<{other:?}>"))),
        };
        state.insert(key, content);
    }
    Ok(state)
}

/// Every live key's value decoded as a generic value (array expressions included), as
/// `check_value` compares them with Python's descriptions.
pub(crate) fn read_values(dict: &mut MmapDict) -> BTreeMap<String, Value> {
    let keys = dict.keys().unwrap();
    keys.into_iter()
        .map(|key| {
            let value = dict.value(&key).unwrap();
            (key, value)
        })
        .collect()
}
