//! serde types to and from `Value` (the codec's `serde` feature).
//!
//! Index:
//! - `derived_struct_is_the_expected_dict`: every shape of the mapping table,
//!   checked through the Python repr of the value it gives.
//! - `python_shapes_are_accepted`: tuples, sets, bytearrays and ints where
//!   Rust wrote lists, bytes and floats.
//! - `errors_name_the_path` / `errors_say_what_was_wrong`: one test per kind
//!   of mismatch, each with the path of its field.
//! - `prop_round_trip`: `from_value(to_value(x)) == x`, and the same through
//!   `dumps` / `loads`, for arbitrary instances of a derived struct.
//! - `nesting_is_bounded`: 128 levels convert, deeper is an error.
//! - `prop_value_is_its_own_serde_form`: for any value (object nodes, sets,
//!   tuples, big ints included), `to_value(&v) == v` and
//!   `from_value::<Value>(&v) == v`; a `Value` field keeps what it holds.

use std::collections::{BTreeMap, HashSet};

use mmappickle_codec::{dumps, from_value, loads, to_value, Construct, Global, Object, Value};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Params {
    name: String,
    scan: Vec<Step>,
    offsets: (i32, f64),
    mode: Mode,
    note: Option<String>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    counts: BTreeMap<u32, u64>,
    big: u128,
    negative: i128,
    unit: (),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    gain: f64,
    enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Mode {
    Off,
    Fixed(f32),
    Pair(u8, char),
    Sweep { from: f64, to: f64 },
}

fn sample() -> Params {
    Params {
        name: "run 1".to_owned(),
        scan: vec![
            Step {
                gain: 0.5,
                enabled: true,
            },
            Step {
                gain: 2.0,
                enabled: false,
            },
        ],
        offsets: (-3, 1.25),
        mode: Mode::Sweep { from: 1.0, to: 2.5 },
        note: None,
        raw: b"\x00\xff".to_vec(),
        counts: [(1, 10), (7, u64::MAX)].into_iter().collect(),
        big: u128::MAX,
        negative: i128::MIN,
        unit: (),
    }
}

#[test]
fn derived_struct_is_the_expected_dict() {
    let value = to_value(&sample()).unwrap();
    assert_eq!(
        value.to_string(),
        "{'name': 'run 1', \
         'scan': [{'gain': 0.5, 'enabled': True}, {'gain': 2.0, 'enabled': False}], \
         'offsets': (-3, 1.25), 'mode': {'Sweep': {'from': 1.0, 'to': 2.5}}, 'note': None, \
         'raw': b'\\x00\\xff', 'counts': {1: 10, 7: 18446744073709551615}, \
         'big': 340282366920938463463374607431768211455, \
         'negative': -170141183460469231731687303715884105728, 'unit': None}"
    );
    let modes = [Mode::Off, Mode::Fixed(1.5), Mode::Pair(3, 'x')];
    let reprs: Vec<String> = modes
        .iter()
        .map(|m| to_value(m).unwrap().to_string())
        .collect();
    assert_eq!(reprs, ["'Off'", "{'Fixed': 1.5}", "{'Pair': (3, 'x')}"]);
    for mode in modes {
        assert_eq!(from_value::<Mode>(&to_value(&mode).unwrap()).unwrap(), mode);
    }
    assert_eq!(from_value::<Params>(&value).unwrap(), sample());
}

// Map keys are hashable Python values: a sequence key becomes a tuple.
#[test]
fn map_keys_are_hashable() {
    let map: BTreeMap<Vec<u8>, bool> = [(vec![1, 2], true)].into_iter().collect();
    let value = to_value(&map).unwrap();
    assert_eq!(value.to_string(), "{(1, 2): True}");
    assert_eq!(from_value::<BTreeMap<Vec<u8>, bool>>(&value).unwrap(), map);
}

fn dict(pairs: Vec<(&str, Value)>) -> Value {
    pairs.into_iter().collect()
}

#[test]
fn python_shapes_are_accepted() {
    // (1, 2) for a Vec, a set for a HashSet, 2 for a float, bytearray for bytes.
    let step = dict(vec![
        ("gain", Value::Int(2)),
        ("enabled", Value::Bool(true)),
    ]);
    let mut value = to_value(&sample()).unwrap();
    let Value::Dict(pairs) = &mut value else {
        unreachable!()
    };
    for (key, field) in pairs.iter_mut() {
        match key.as_str() {
            Some("scan") => *field = Value::Tuple(vec![step.clone()]),
            Some("raw") => *field = Value::bytearray(*b"ab"),
            Some("offsets") => *field = Value::from(vec![Value::Int(1), Value::Int(2)]),
            _ => {}
        }
    }
    let params: Params = from_value(&value).unwrap();
    assert_eq!(
        params.scan,
        [Step {
            gain: 2.0,
            enabled: true
        }]
    );
    assert_eq!(params.raw, b"ab");
    assert_eq!(params.offsets, (1, 2.0));

    let set = Value::Set(vec![Value::from("a"), Value::from("b")]);
    let names: HashSet<String> = from_value(&set).unwrap();
    assert_eq!(names, ["a", "b"].map(String::from).into_iter().collect());
    let frozen = Value::FrozenSet(vec![Value::Int(3)]);
    assert_eq!(from_value::<Vec<u16>>(&frozen).unwrap(), [3]);
    // bytes for a plain Vec<u8> (no serde_bytes), and a list of ints for bytes.
    assert_eq!(from_value::<Vec<u8>>(&Value::bytes(*b"hi")).unwrap(), b"hi");
    let ints = Value::from(vec![104u8, 105]);
    assert_eq!(
        from_value::<serde_bytes::ByteBuf>(&ints)
            .unwrap()
            .into_vec(),
        b"hi"
    );
    // A unit variant may be written {'Off': None}, as a dict of one item.
    let off = dict(vec![("Off", Value::None)]);
    assert_eq!(from_value::<Mode>(&off).unwrap(), Mode::Off);
}

fn error_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(value: &Value) -> String {
    from_value::<T>(value).unwrap_err().to_string()
}

#[derive(Debug, Deserialize)]
struct Outer {
    #[allow(dead_code)]
    params: Params,
}

#[test]
fn errors_name_the_path() {
    let mut steps: Vec<Value> = (0..4)
        .map(|_| {
            dict(vec![
                ("gain", Value::Float(1.0)),
                ("enabled", Value::Bool(true)),
            ])
        })
        .collect();
    steps[3] = dict(vec![
        ("gain", Value::from("loud")),
        ("enabled", Value::Bool(true)),
    ]);
    let mut params = to_value(&sample()).unwrap();
    let Value::Dict(pairs) = &mut params else {
        unreachable!()
    };
    pairs[1].1 = Value::List(steps);
    let outer = dict(vec![("params", params.clone())]);
    assert_eq!(
        error_of::<Outer>(&outer),
        "params.scan[3].gain: expected float, found str"
    );

    let Value::Dict(pairs) = &mut params else {
        unreachable!()
    };
    pairs[1].1 = Value::List(vec![]);
    pairs[6].1 = dict(vec![("k", Value::Int(1))]);
    assert_eq!(
        error_of::<Params>(&params),
        "counts: key 'k': expected int, found str"
    );
    let Value::Dict(pairs) = &mut params else {
        unreachable!()
    };
    pairs[6].1 = [(Value::Int(5), Value::Int(-1))].into_iter().collect();
    assert_eq!(
        error_of::<Params>(&params),
        "counts[5]: expected u64, found integer `-1`"
    );
}

#[test]
fn errors_say_what_was_wrong() {
    let step = |pairs| error_of::<Step>(&dict(pairs));
    assert_eq!(
        step(vec![("gain", Value::Float(1.0))]),
        "missing field `enabled`"
    );
    assert_eq!(
        step(vec![
            ("gain", Value::Float(1.0)),
            ("enabled", Value::Int(1))
        ]),
        "enabled: expected bool, found int"
    );
    assert_eq!(error_of::<Step>(&Value::Int(1)), "expected dict, found int");
    assert_eq!(
        error_of::<(u8, u8)>(&Value::tuple([1, 2, 3])),
        "expected 2 items, found 3"
    );
    assert_eq!(
        error_of::<(u8, u8, u8)>(&Value::tuple([1, 2])),
        "expected a tuple of size 3, found 2 items"
    );
    assert_eq!(
        error_of::<Mode>(&Value::from("Loud")),
        "unknown variant `Loud`, expected one of `Off`, `Fixed`, `Pair`, `Sweep`"
    );
    assert_eq!(
        error_of::<Mode>(&dict(vec![("Fixed", Value::from("x"))])),
        "Fixed: expected float, found str"
    );
    assert_eq!(
        error_of::<Mode>(&Value::from("Fixed")),
        "expected {'Fixed': content}, found the bare variant name"
    );
    assert_eq!(
        error_of::<u64>(&Value::from(1u128 << 100)),
        "expected u64, found integer `1267650600228229401496703205376` as u128"
    );
    let huge = Value::from(u128::MAX);
    let Value::BigInt(big) = &huge else {
        unreachable!()
    };
    let mut bytes = big.to_le_bytes().to_vec();
    bytes.push(1);
    let too_big = mmappickle_codec::BigInt::value_from_le_bytes(&bytes);
    assert!(error_of::<u128>(&too_big).starts_with("expected an int of at most 128 bits"));
    let date = Value::from(Object::new(
        Construct::Reduce,
        Value::Global(Global::new("datetime", "date")),
        vec![],
    ));
    assert_eq!(error_of::<String>(&date), "expected str, found date");
    assert_eq!(
        error_of::<serde_json::Value>(&date),
        "expected a plain value, found date"
    );
    // Serializing: a dict can not be a Python dict key.
    let map: BTreeMap<BTreeMap<u8, u8>, u8> =
        [([(1, 1)].into_iter().collect(), 1)].into_iter().collect();
    assert_eq!(
        to_value(&map).unwrap_err().to_string(),
        "map key: expected a map key Python can hash, found dict"
    );
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (any::<f64>(), any::<bool>()).prop_map(|(gain, enabled)| Step { gain, enabled })
}

fn mode_strategy() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::Off),
        any::<f32>().prop_map(Mode::Fixed),
        (any::<u8>(), any::<char>()).prop_map(|(n, c)| Mode::Pair(n, c)),
        (any::<f64>(), any::<f64>()).prop_map(|(from, to)| Mode::Sweep { from, to }),
    ]
}

prop_compose! {
    fn params_strategy()(
        name in ".*",
        scan in prop::collection::vec(step_strategy(), 0..5),
        offsets in any::<(i32, f64)>(),
        mode in mode_strategy(),
        note in proptest::option::of(".*"),
        raw in prop::collection::vec(any::<u8>(), 0..16),
        counts in prop::collection::btree_map(any::<u32>(), any::<u64>(), 0..4),
        big in any::<u128>(),
        negative in any::<i128>(),
    ) -> Params {
        Params { name, scan, offsets, mode, note, raw, counts, big, negative, unit: () }
    }
}

/// Equality that treats NaN as itself (proptest draws NaNs).
fn same(a: &Params, b: &Params) -> bool {
    to_value(a).unwrap() == to_value(b).unwrap()
}

proptest! {
    #[test]
    fn prop_round_trip(params in params_strategy()) {
        let value = to_value(&params).unwrap();
        let back: Params = from_value(&value).unwrap();
        prop_assert!(same(&back, &params), "{back:?} != {params:?}");
        let through_pickle: Params = from_value(&loads(&dumps(&value)).unwrap()).unwrap();
        prop_assert!(same(&through_pickle, &params));
    }
}

fn arbitrary_key() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<i128>().prop_map(Value::from),
        any::<f64>().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        ("[a-z]{1,6}", "[A-Z][a-z]{0,6}").prop_map(|(m, n)| Value::Global(Global::new(m, n))),
    ]
}

fn arbitrary_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        arbitrary_key(),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::ByteArray),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..6);
        prop_oneof![
            items.clone().prop_map(Value::List),
            items.clone().prop_map(Value::Tuple),
            items.clone().prop_map(Value::Set),
            items.clone().prop_map(Value::FrozenSet),
            prop::collection::vec((arbitrary_key(), inner.clone()), 0..4).prop_map(Value::Dict),
            (inner, items).prop_map(|(state, args)| {
                let mut node = Object::new(
                    Construct::NewObj,
                    Value::Global(Global::new("collections", "OrderedDict")),
                    args,
                );
                node.state = Some(state);
                Value::from(node)
            }),
        ]
    })
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct WithExtra {
    name: String,
    extra: Value,
}

proptest! {
    #[test]
    fn prop_value_is_its_own_serde_form(value in arbitrary_value()) {
        prop_assert_eq!(&to_value(&value).unwrap(), &value);
        prop_assert_eq!(&from_value::<Value>(&value).unwrap(), &value);
        let record = WithExtra { name: "n".to_owned(), extra: value };
        let back: WithExtra = from_value(&to_value(&record).unwrap()).unwrap();
        prop_assert_eq!(back, record);
    }
}

// Nesting is bounded (128 levels, as serde_json's), so a deep value from a
// file is a clear error, not a stack overflow.
#[test]
fn nesting_is_bounded() {
    let nest = |levels: usize| (0..levels).fold(Value::None, |inner, _| Value::List(vec![inner]));
    let deepest = nest(128);
    assert_eq!(from_value::<Value>(&deepest).unwrap(), deepest);
    assert_eq!(to_value(&deepest).unwrap(), deepest);
    let too_deep = nest(129);
    let message = "nested deeper than 128 levels, the most to_value / from_value go";
    let error = from_value::<Value>(&too_deep).unwrap_err();
    assert_eq!(error.message(), message);
    assert!(error.path().starts_with("[0][0][0]"), "{}", error.path());
    assert_eq!(to_value(&too_deep).unwrap_err().message(), message);
    let dicts = (0..1000).fold(Value::None, |inner, _| {
        Value::Dict(vec![(Value::from("k"), inner)])
    });
    assert_eq!(
        from_value::<serde_json::Value>(&dicts)
            .unwrap_err()
            .message(),
        message
    );
}
