//! Decoding tests of `mmappickle-codec`: the opcode parser and encoder, the
//! safe unpickler on CPython-made streams of every protocol, and bad input.
//!
//! Index:
//! - `every_op_round_trips` (proptest): `parse_op(encode_op(op)) == op` for all 68 opcodes.
//! - `protocol0_text_matches_cpython`: the encoder writes protocol 0 text as CPython does.
//! - `ops_iterator_gives_offsets`: offsets, the stop after `STOP` or at the end, errors.
//! - `all_protocols_load_the_same_dict`: one dict pickled by CPython at protocols 0 to 5.
//! - `common_objects_stay_nodes`: `OrderedDict` and `date` stay object nodes; sets,
//!   frozensets, bytes and bytearrays load as values at every protocol (protocol 0-2
//!   builtin calls included, even memoized and shared), unless something is applied to them.
//! - `every_truncation_is_an_error`: each prefix of the streams above is an `Err`.
//! - `huge_lengths_are_errors`: lengths of 2^63 in `BINBYTES8`, `BINUNICODE8`, `FRAME`.
//! - `deep_nesting_is_bounded`: a million `MARK`s, a million nested lists.
//! - `memo_errors` / `recursive_structures` / `unsupported_opcodes` / `stack_errors`.
//! - `limits_are_enforced`: `max_memo` and `max_elements` (a `GET` copy bomb).
//! - `trailing_bytes_after_stop_are_ignored`.

use mmappickle_codec::{
    dis, encode_op, loads, loads_with, ops, parse_op, Construct, ErrorKind, Global, Limits, Object,
    Op, TextInt, Value,
};
use proptest::prelude::*;

// `x = {'a': l, 'b': l, 't': (1, 2.5, None, True, False), 's': 'hé€😀\\\n',
//  'big': 2**70, 'neg': -2**64, 'f': [-0.0, 1e100], 'n': -5, 'm': 300,
//  'x': 70000, 'y': -3000000000}` with `l = [1]`: `pickle.dumps(x, protocol)`
// by CPython 3.11, for protocols 0, 1, 2, 4 and 5 (3 is 2 with another PROTO).
const DICT_P0: &[u8] = b"(dp0\x0aVa\x0ap1\x0a(lp2\x0aI1\x0aasVb\x0ap3\x0ag2\x0asVt\x0ap4\x0a(I1\x0aF2.5\x0aNI01\x0aI00\x0atp5\x0asVs\x0ap6\x0aVh\xe9\x5cu20ac\x5cU0001f600\x5cu005c\x5cu000a\x0ap7\x0asVbig\x0ap8\x0aL1180591620717411303424L\x0asVneg\x0ap9\x0aL-18446744073709551616L\x0asVf\x0ap10\x0a(lp11\x0aF-0.0\x0aaF1e+100\x0aasVn\x0ap12\x0aI-5\x0asVm\x0ap13\x0aI300\x0asVx\x0ap14\x0aI70000\x0asVy\x0ap15\x0aL-3000000000L\x0as.";
const DICT_P1: &[u8] = b"}q\x00(X\x01\x00\x00\x00aq\x01]q\x02K\x01aX\x01\x00\x00\x00bq\x03h\x02X\x01\x00\x00\x00tq\x04(K\x01G@\x04\x00\x00\x00\x00\x00\x00NI01\x0aI00\x0atq\x05X\x01\x00\x00\x00sq\x06X\x0c\x00\x00\x00h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x5c\x0aq\x07X\x03\x00\x00\x00bigq\x08L1180591620717411303424L\x0aX\x03\x00\x00\x00negq\x09L-18446744073709551616L\x0aX\x01\x00\x00\x00fq\x0a]q\x0b(G\x80\x00\x00\x00\x00\x00\x00\x00GT\xb2I\xad%\x94\xc3}eX\x01\x00\x00\x00nq\x0cJ\xfb\xff\xff\xffX\x01\x00\x00\x00mq\x0dM,\x01X\x01\x00\x00\x00xq\x0eJp\x11\x01\x00X\x01\x00\x00\x00yq\x0fL-3000000000L\x0au.";
const DICT_P2: &[u8] = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02K\x01aX\x01\x00\x00\x00bq\x03h\x02X\x01\x00\x00\x00tq\x04(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89tq\x05X\x01\x00\x00\x00sq\x06X\x0c\x00\x00\x00h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x5c\x0aq\x07X\x03\x00\x00\x00bigq\x08\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@X\x03\x00\x00\x00negq\x09\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xffX\x01\x00\x00\x00fq\x0a]q\x0b(G\x80\x00\x00\x00\x00\x00\x00\x00GT\xb2I\xad%\x94\xc3}eX\x01\x00\x00\x00nq\x0cJ\xfb\xff\xff\xffX\x01\x00\x00\x00mq\x0dM,\x01X\x01\x00\x00\x00xq\x0eJp\x11\x01\x00X\x01\x00\x00\x00yq\x0f\x8a\x05\x00\xa2/M\xffu.";
const DICT_P4: &[u8] = b"\x80\x04\x95\x9c\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94K\x01a\x8c\x01b\x94h\x02\x8c\x01t\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89t\x94\x8c\x01s\x94\x8c\x0ch\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x5c\x0a\x94\x8c\x03big\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@\x8c\x03neg\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff\x8c\x01f\x94]\x94(G\x80\x00\x00\x00\x00\x00\x00\x00GT\xb2I\xad%\x94\xc3}e\x8c\x01n\x94J\xfb\xff\xff\xff\x8c\x01m\x94M,\x01\x8c\x01x\x94Jp\x11\x01\x00\x8c\x01y\x94\x8a\x05\x00\xa2/M\xffu.";
const DICT_P5: &[u8] = b"\x80\x05\x95\x9c\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94K\x01a\x8c\x01b\x94h\x02\x8c\x01t\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00N\x88\x89t\x94\x8c\x01s\x94\x8c\x0ch\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x5c\x0a\x94\x8c\x03big\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@\x8c\x03neg\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff\x8c\x01f\x94]\x94(G\x80\x00\x00\x00\x00\x00\x00\x00GT\xb2I\xad%\x94\xc3}e\x8c\x01n\x94J\xfb\xff\xff\xff\x8c\x01m\x94M,\x01\x8c\x01x\x94Jp\x11\x01\x00\x8c\x01y\x94\x8a\x05\x00\xa2/M\xffu.";

// pickle.dumps(collections.OrderedDict(a=1), 4)
const ORDERED_DICT_P4: &[u8] = b"\x80\x04\x95)\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94\x8c\x01a\x94K\x01s.";
// pickle.dumps({1, 2}, 4) and pickle.dumps(frozenset([1]), 4)
const SET_P4: &[u8] = b"\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90.";
const FROZENSET_P4: &[u8] = b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00(K\x01\x91\x94.";
// pickle.dumps({1, 2}, 2): a REDUCE of __builtin__.set
const SET_P2: &[u8] = b"\x80\x02c__builtin__\x0aset\x0aq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03.";
// pickle.dumps(b'ab\x00', 0): a REDUCE of _codecs.encode
const BYTES_P0: &[u8] =
    b"c_codecs\x0aencode\x0ap0\x0a(Vab\x5cu0000\x0ap1\x0aVlatin1\x0ap2\x0atp3\x0aRp4\x0a.";
// pickle.dumps(b'ab\x00', 3) and pickle.dumps(bytearray(b'ab'), 5)
const BYTES_P3: &[u8] = b"\x80\x03C\x03ab\x00q\x00.";
const BYTEARRAY_P5: &[u8] =
    b"\x80\x05\x95\x0d\x00\x00\x00\x00\x00\x00\x00\x96\x02\x00\x00\x00\x00\x00\x00\x00ab\x94.";
// pickle.dumps(datetime.date(2020, 1, 2), 4)
const DATE_P4: &[u8] = b"\x80\x04\x95 \x00\x00\x00\x00\x00\x00\x00\x8c\x08datetime\x94\x8c\x04date\x94\x93\x94C\x04\x07\xe4\x01\x02\x94\x85\x94R\x94.";
// pickle.dumps([1, True, 'x', 1.5, 2**40, None, ('a',)], 0)
const LIST_P0: &[u8] = b"(lp0\nI1\naI01\naVx\np1\naF1.5\naL1099511627776L\naNa(Va\np2\ntp3\na.";

fn expected_dict() -> Value {
    let shared = Value::List(vec![Value::Int(1)]);
    Value::from_iter([
        ("a", shared.clone()),
        ("b", shared),
        (
            "t",
            Value::Tuple(vec![
                Value::Int(1),
                Value::Float(2.5),
                Value::None,
                Value::Bool(true),
                Value::Bool(false),
            ]),
        ),
        ("s", Value::from("h\u{e9}\u{20ac}\u{1f600}\\\n")),
        ("big", Value::from(1u128 << 70)),
        ("neg", Value::from(-(1i128 << 64))),
        (
            "f",
            Value::List(vec![Value::Float(-0.0), Value::Float(1e100)]),
        ),
        ("n", Value::Int(-5)),
        ("m", Value::Int(300)),
        ("x", Value::Int(70000)),
        ("y", Value::Int(-3_000_000_000)),
    ])
}

fn all_streams() -> [&'static [u8]; 13] {
    [
        DICT_P0,
        DICT_P1,
        DICT_P2,
        DICT_P4,
        DICT_P5,
        ORDERED_DICT_P4,
        SET_P4,
        FROZENSET_P4,
        SET_P2,
        BYTES_P0,
        BYTES_P3,
        BYTEARRAY_P5,
        DATE_P4,
    ]
}

/// Builds the op of variant `index` (0..68) from generated material.
fn make_op<'a>(
    index: usize,
    line: &'a str,
    ascii: &'a str,
    bytes: &'a [u8],
    decimal: &'a str,
    number: u64,
    float: f64,
) -> Op<'a> {
    use std::borrow::Cow;
    let small = number as u8;
    match index {
        0 => Op::Mark,
        1 => Op::Stop,
        2 => Op::Pop,
        3 => Op::PopMark,
        4 => Op::Dup,
        5 => Op::Float(float),
        6 => Op::Int(match decimal {
            "00" => TextInt::Bool(false),
            "01" => TextInt::Bool(true),
            _ => TextInt::Decimal(decimal),
        }),
        7 => Op::BinInt(number as i32),
        8 => Op::BinInt1(small),
        9 => Op::Long(decimal),
        10 => Op::BinInt2(number as u16),
        11 => Op::None,
        12 => Op::PersId(ascii),
        13 => Op::BinPersId,
        14 => Op::Reduce,
        15 => Op::String(Cow::Borrowed(bytes)),
        16 => Op::BinString(bytes),
        17 => Op::ShortBinString(bytes.get(..255).unwrap_or(bytes)),
        18 => Op::Unicode(Cow::Borrowed(line)),
        19 => Op::BinUnicode(line),
        20 => Op::Append,
        21 => Op::Build,
        22 => Op::Global {
            module: line,
            name: ascii,
        },
        23 => Op::Dict,
        24 => Op::EmptyDict,
        25 => Op::Appends,
        26 => Op::Get(number),
        27 => Op::BinGet(small),
        28 => Op::Inst {
            module: ascii,
            name: line,
        },
        29 => Op::LongBinGet(number as u32),
        30 => Op::List,
        31 => Op::EmptyList,
        32 => Op::Obj,
        33 => Op::Put(number),
        34 => Op::BinPut(small),
        35 => Op::LongBinPut(number as u32),
        36 => Op::SetItem,
        37 => Op::Tuple,
        38 => Op::EmptyTuple,
        39 => Op::SetItems,
        40 => Op::BinFloat(float),
        41 => Op::Proto(small),
        42 => Op::NewObj,
        43 => Op::Ext1(small),
        44 => Op::Ext2(number as u16),
        45 => Op::Ext4(number as i32),
        46 => Op::Tuple1,
        47 => Op::Tuple2,
        48 => Op::Tuple3,
        49 => Op::NewTrue,
        50 => Op::NewFalse,
        51 => Op::Long1(bytes.get(..255).unwrap_or(bytes)),
        52 => Op::Long4(bytes),
        53 => Op::BinBytes(bytes),
        54 => Op::ShortBinBytes(bytes.get(..255).unwrap_or(bytes)),
        55 => Op::ShortBinUnicode(ascii),
        56 => Op::BinUnicode8(line),
        57 => Op::BinBytes8(bytes),
        58 => Op::EmptySet,
        59 => Op::AddItems,
        60 => Op::FrozenSet,
        61 => Op::NewObjEx,
        62 => Op::StackGlobal,
        63 => Op::Memoize,
        64 => Op::Frame(number),
        65 => Op::ByteArray8(bytes),
        66 => Op::NextBuffer,
        _ => Op::ReadonlyBuffer,
    }
}

proptest! {
    // Every one of the 68 opcodes, with generated arguments, decodes back to
    // itself and uses exactly the bytes written.
    #[test]
    fn every_op_round_trips(
        index in 0usize..68,
        line in "[^\n]{0,12}",
        ascii in "[ -~]{0,12}",
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        decimal in "[+-]?[0-9]{1,40}",
        number in any::<u64>(),
        float in any::<f64>().prop_filter("text FLOAT cannot keep a NaN payload", |f| !f.is_nan()),
    ) {
        let op = make_op(index, &line, &ascii, &bytes, &decimal, number, float);
        let mut encoded = Vec::new();
        encode_op(&op, &mut encoded);
        encoded.extend_from_slice(b"trailing");
        let (decoded, used) = parse_op(&encoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &op);
        prop_assert_eq!(used, encoded.len() - b"trailing".len());
        prop_assert_eq!(decoded.code(), encoded[0]);
    }
}

// The op names are those of pickletools, and the encoder writes protocol 0
// text arguments as CPython's pickle.dumps(x, 0) does (bytes from CPython).
#[test]
fn protocol0_text_matches_cpython() {
    let encode = |op: Op<'_>| {
        let mut out = Vec::new();
        encode_op(&op, &mut out);
        out
    };
    // pickle.dumps('h\xe9\u20ac\U0001f600\\\n', 0) holds this UNICODE line.
    assert_eq!(
        encode(Op::Unicode("h\u{e9}\u{20ac}\u{1f600}\\\n".into())),
        b"Vh\xe9\\u20ac\\U0001f600\\u005c\\u000a\n"
    );
    assert_eq!(
        encode(Op::Long("1180591620717411303424")),
        b"L1180591620717411303424L\n"
    );
    assert_eq!(encode(Op::Int(TextInt::Bool(true))), b"I01\n");
    assert_eq!(encode(Op::Int(TextInt::Decimal("-5"))), b"I-5\n");
    assert_eq!(encode(Op::Float(2.5)), b"F2.5\n");
    assert_eq!(encode(Op::Put(10)), b"p10\n");
    assert_eq!(
        encode(Op::Global {
            module: "_codecs",
            name: "encode"
        }),
        b"c_codecs\nencode\n"
    );
    // Python writes 1e+100; both spellings decode to the same float.
    assert_eq!(
        parse_op(b"F1e+100\n").map(|(op, _)| op),
        Ok(Op::Float(1e100))
    );
    assert_eq!(Op::StackGlobal.name(), "STACK_GLOBAL");
    assert_eq!(Op::BinPersId.name(), "BINPERSID");
}

// The iterator gives each op's offset and stops after STOP (trailing bytes unread).
#[test]
fn ops_iterator_gives_offsets() {
    let items: Vec<_> = ops(b"\x80\x04K\x05.garbage").collect();
    assert_eq!(
        items,
        vec![
            Ok((0, Op::Proto(4))),
            Ok((2, Op::BinInt1(5))),
            Ok((4, Op::Stop))
        ]
    );
    // The end of the input between ops ends the walk (an entry's value bytes have no STOP).
    assert_eq!(ops(b"N").collect::<Vec<_>>(), vec![Ok((0, Op::None))]);
    // An op cut short is an error.
    let cut: Vec<_> = ops(b"NJ\x01").collect();
    assert_eq!(
        cut.last()
            .cloned()
            .and_then(Result::err)
            .map(|e| e.offset()),
        Some(1)
    );
    // An error is the last item, at its absolute offset.
    let items: Vec<_> = ops(b"K\x05\xff").collect();
    let last = items.last().cloned().and_then(Result::err);
    assert_eq!(
        last.map(|e| (e.offset(), e.kind().clone())),
        Some((2, ErrorKind::UnknownOpcode(0xff)))
    );
}

// One dict with a shared list, a tuple of scalars, a non-ASCII string, big
// ints and floats loads the same at every protocol. The shared list was
// memoized before its APPEND and fetched by a later GET: it must be full.
#[test]
fn all_protocols_load_the_same_dict() {
    for (protocol, stream) in [
        (0, DICT_P0),
        (1, DICT_P1),
        (2, DICT_P2),
        (4, DICT_P4),
        (5, DICT_P5),
    ] {
        assert_eq!(loads(stream), Ok(expected_dict()), "protocol {protocol}");
    }
    assert_eq!(
        loads(LIST_P0),
        Ok(Value::List(vec![
            Value::Int(1),
            Value::Bool(true),
            Value::from("x"),
            Value::Float(1.5),
            Value::Int(1 << 40),
            Value::None,
            Value::Tuple(vec![Value::from("a")]),
        ]))
    );
}

// Objects that Python would build by calling code stay object nodes.
#[test]
fn common_objects_stay_nodes() {
    let mut ordered = Object::new(
        Construct::Reduce,
        Global::new("collections", "OrderedDict").into(),
        vec![],
    );
    ordered.dict_items = vec![(Value::from("a"), Value::Int(1))];
    assert_eq!(loads(ORDERED_DICT_P4), Ok(ordered.into()));

    assert_eq!(
        loads(SET_P4),
        Ok(Value::Set(vec![Value::Int(1), Value::Int(2)]))
    );
    assert_eq!(
        loads(FROZENSET_P4),
        Ok(Value::FrozenSet(vec![Value::Int(1)]))
    );
    // Protocol 2 sets are a REDUCE of __builtin__.set, protocol 0 bytes
    // _codecs.encode(text, 'latin1'): they load as what Python builds.
    assert_eq!(
        loads(SET_P2),
        Ok(Value::Set(vec![Value::Int(1), Value::Int(2)]))
    );
    assert_eq!(loads(BYTES_P0), Ok(Value::Bytes(b"ab\0".to_vec())));
    // s = {1}; pickle.dumps([s, s], 2): the GET copies the set while it is
    // still on the stack, as the object node, and both load native.
    let shared_set = b"\x80\x02]q\x00(c__builtin__\nset\nq\x01]q\x02K\x01a\x85q\x03Rq\x04h\x04e.";
    let set = Value::Set(vec![Value::Int(1)]);
    assert_eq!(loads(shared_set), Ok(Value::List(vec![set.clone(), set])));
    // pickle.dumps([b'ab', b'ab', bytearray(b'ab')], 2): memoized bytes, and
    // a bytearray whose argument is itself a _codecs.encode call.
    let shared_bytes = b"\x80\x02]q\x00(c_codecs\nencode\nq\x01X\x02\x00\x00\x00abq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05h\x05c__builtin__\nbytearray\nq\x06h\x01X\x02\x00\x00\x00abq\x07h\x03\x86q\x08Rq\t\x85q\nRq\x0be.";
    let ab = Value::bytes(*b"ab");
    assert_eq!(
        loads(shared_bytes),
        Ok(Value::List(vec![ab.clone(), ab, Value::bytearray(*b"ab")]))
    );
    // A BUILD (even of None) or an APPEND applied to the call keeps the object node.
    let mut built = Object::new(
        Construct::Reduce,
        Global::new("__builtin__", "set").into(),
        vec![Value::List(vec![Value::Int(1)])],
    );
    built.state = Some(Value::None);
    assert_eq!(
        loads(b"\x80\x02c__builtin__\nset\n]K\x01a\x85RNb."),
        Ok(built.clone().into())
    );
    built.state = None;
    built.list_items = vec![Value::Int(2)];
    assert_eq!(
        loads(b"\x80\x02c__builtin__\nset\n]K\x01a\x85RK\x02a."),
        Ok(built.into())
    );
    assert_eq!(loads(BYTES_P3), Ok(Value::Bytes(b"ab\0".to_vec())));
    assert_eq!(loads(BYTEARRAY_P5), Ok(Value::ByteArray(b"ab".to_vec())));
    let date = Object::new(
        Construct::Reduce,
        Global::new("datetime", "date").into(),
        vec![Value::Bytes(vec![0x07, 0xe4, 1, 2])],
    );
    assert_eq!(loads(DATE_P4), Ok(date.into()));
}

// Every strict prefix of every stream lacks its STOP: loads is an Err and
// neither loads nor dis panics.
#[test]
fn every_truncation_is_an_error() {
    for stream in all_streams().into_iter().chain([LIST_P0]) {
        assert!(loads(stream).is_ok());
        for cut in 0..stream.len() {
            let prefix = &stream[..cut];
            assert!(
                loads(prefix).is_err(),
                "prefix of {cut} bytes of {stream:?}"
            );
            assert!(dis(prefix).contains("error:"));
        }
    }
}

// A declared length of 2^63 is an error about the length, found before any
// allocation (the test would abort on a 2^63-byte allocation).
#[test]
fn huge_lengths_are_errors() {
    let huge = (1u64 << 63).to_le_bytes();
    for (opcode, name) in [
        (0x8e, "BINBYTES8"),
        (0x8d, "BINUNICODE8"),
        (0x96, "BYTEARRAY8"),
    ] {
        let mut data = vec![0x80, 4, opcode];
        data.extend_from_slice(&huge);
        data.extend_from_slice(b"xyz.");
        let error = loads(&data).unwrap_err();
        assert_eq!(
            error.kind(),
            &ErrorKind::LengthTooLarge {
                opcode: name,
                length: 1 << 63,
                available: 4
            }
        );
        assert_eq!(error.offset(), 2);
    }
    let mut frame = vec![0x80, 4, 0x95];
    frame.extend_from_slice(&huge);
    frame.extend_from_slice(b"N.");
    let error = loads(&frame).unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::LengthTooLarge {
            opcode: "FRAME",
            ..
        }
    ));
    // A frame that fits is fine, even when an op crosses its end (as CPython's C loader).
    assert_eq!(
        loads(b"\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00\x00K\x07."),
        Ok(Value::Int(7))
    );
}

// A million nested MARKs and a million nested lists stop at max_depth, at the opcode that
// crossed it: the rest of the input is never walked.
#[test]
fn deep_nesting_is_bounded() {
    let marks = vec![b'('; 1_000_000];
    let error = loads(&marks).unwrap_err();
    assert_eq!(
        error.kind(),
        &ErrorKind::LimitExceeded {
            limit: "max_depth",
            max: 1000
        }
    );
    assert!(error.offset() <= 1001, "stopped at {}", error.offset());

    let mut lists = vec![b']'; 1_000_000];
    lists.extend(std::iter::repeat_n(b'a', 999_999));
    lists.push(b'.');
    let error = loads(&lists).unwrap_err();
    assert_eq!(
        error.kind(),
        &ErrorKind::LimitExceeded {
            limit: "max_depth",
            max: 1000
        }
    );
    // The million empty lists are pushed; the 1001st append of one into another stops.
    assert!(error.offset() <= 1_001_001, "stopped at {}", error.offset());

    // Nested tuples through MARK ... TUPLE are bounded the same way.
    let mut tuples = b"(".repeat(1500);
    tuples.extend(b"t".repeat(1500));
    tuples.push(b'.');
    let error = loads(&tuples).unwrap_err();
    assert!(
        matches!(
            error.kind(),
            ErrorKind::LimitExceeded {
                limit: "max_depth",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.offset() <= 1001, "stopped at {}", error.offset());

    // Within the bound, nesting works.
    let mut nested = vec![b']'; 500];
    nested.extend(std::iter::repeat_n(b'a', 499));
    nested.push(b'.');
    assert!(loads(&nested).is_ok());
}

#[test]
fn memo_errors() {
    // GET of an index never PUT.
    let error = loads(b"\x80\x04N\x94h\x05.").unwrap_err();
    assert_eq!(
        error.kind(),
        &ErrorKind::MemoMissing {
            opcode: "BINGET",
            index: 5
        }
    );
    assert_eq!(error.offset(), 4);
    // PUT and GET with text and sparse indices.
    assert_eq!(loads(b"K\x07p123456\n0g123456\n."), Ok(Value::Int(7)));
    assert_eq!(
        loads(b"K\x07r\xff\xff\xff\xff0j\xff\xff\xff\xff."),
        Ok(Value::Int(7))
    );
}

#[test]
fn recursive_structures() {
    // l = []; l.append(l): EMPTY_LIST MEMOIZE MARK BINGET 0 APPENDS
    let error = loads(b"\x80\x04]\x94(h\x00e.").unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Recursive { opcode: "APPENDS" });
    // d = {}; d['k'] = (d,): the cycle goes through a tuple.
    let error = loads(b"\x80\x04}\x94\x8c\x01k\x94h\x00\x85\x94s.").unwrap_err();
    assert_eq!(error.kind(), &ErrorKind::Recursive { opcode: "SETITEM" });
    // A list referenced twice from a tuple is not a cycle.
    let shared = Value::List(vec![]);
    assert_eq!(
        loads(b"\x80\x04]\x94h\x00\x86."),
        Ok(Value::Tuple(vec![shared.clone(), shared]))
    );
}

#[test]
fn unsupported_opcodes() {
    for (data, opcode) in [
        (&b"\x80\x05\x97."[..], "NEXT_BUFFER"),
        (b"C\x01a\x98.", "READONLY_BUFFER"),
        (b"Pid\n.", "PERSID"),
        (b"N\x51.", "BINPERSID"),
        (b"\x82\x01.", "EXT1"),
        (b"\x83\x01\x00.", "EXT2"),
        (b"\x84\x01\x00\x00\x00.", "EXT4"),
    ] {
        let error = loads(data).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Unsupported { opcode: name, .. } if *name == opcode),
            "{error}"
        );
    }
    let error = loads(b"\x80\x06N.").unwrap_err();
    assert!(matches!(
        error.kind(),
        ErrorKind::BadArgument {
            opcode: "PROTO",
            ..
        }
    ));
}

#[test]
fn stack_errors() {
    let kind = |data: &[u8]| loads(data).unwrap_err().kind().clone();
    assert_eq!(kind(b"a."), ErrorKind::StackUnderflow { opcode: "APPEND" });
    assert_eq!(
        kind(b"N(a."),
        ErrorKind::StackUnderflow { opcode: "APPEND" }
    );
    assert_eq!(kind(b"Ne."), ErrorKind::MissingMark { opcode: "APPENDS" });
    assert_eq!(kind(b"(."), ErrorKind::StackUnderflow { opcode: "STOP" });
    assert_eq!(kind(b"\xff"), ErrorKind::UnknownOpcode(0xff));
    assert_eq!(kind(b"N"), ErrorKind::UnexpectedEof { opcode: None });
    assert_eq!(
        kind(b"J\x01\x00"),
        ErrorKind::UnexpectedEof {
            opcode: Some("BININT")
        }
    );
    assert_eq!(
        kind(b"](K\x01K\x02u."),
        ErrorKind::WrongType {
            opcode: "SETITEMS",
            expected: "a dict or an object",
            found: "list"
        }
    );
    assert!(matches!(
        kind(b"K\x01K\x02R."),
        ErrorKind::WrongType {
            opcode: "REDUCE",
            ..
        }
    ));
    assert!(matches!(
        kind(b"N}b."),
        ErrorKind::WrongType {
            opcode: "BUILD",
            ..
        }
    ));
    assert!(matches!(
        kind(b"(K\x01d."),
        ErrorKind::BadArgument { opcode: "DICT", .. }
    ));
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_memo: 2,
        ..Limits::default()
    };
    let error = loads_with(b"N\x94N\x94N\x94.", &limits).unwrap_err();
    assert_eq!(
        error.kind(),
        &ErrorKind::LimitExceeded {
            limit: "max_memo",
            max: 2
        }
    );
    // Each GET copies the memoized list: a copy bomb stops at max_elements.
    let mut bomb = b"](".to_vec();
    bomb.extend(b"N".repeat(1000));
    bomb.extend(b"e\x94(");
    bomb.extend(b"h\x00".repeat(100_000));
    bomb.extend(b"l.");
    let limits = Limits {
        max_elements: 1_000_000,
        ..Limits::default()
    };
    let error = loads_with(&bomb, &limits).unwrap_err();
    assert_eq!(
        error.kind(),
        &ErrorKind::LimitExceeded {
            limit: "max_elements",
            max: 1_000_000
        }
    );
}

#[test]
fn trailing_bytes_after_stop_are_ignored() {
    assert_eq!(loads(b"\x80\x04K\x05.\xff\xff garbage"), Ok(Value::Int(5)));
}
