//! Cross-language conformance: helpers shared by the test files under `tests/tests/`.
//!
//! Python is found through environment variables that `cargo xtask test` sets,
//! falling back to the virtual environments that `cargo xtask venv` creates
//! under `target/`; when neither is there, the test binary stops with one line
//! naming the command that makes it ([`stop_missing`]):
//!
//! | variable | environment | what it has |
//! |---|---|---|
//! | `MMAPPICKLE_PYTHON` | `target/py-mmappickle` | `mmappickle==1.0`, `numpy==1.23.5` |
//! | `MMAPPICKLE_PYTHON_NUMPY2` | `target/py-numpy2` | the newest numpy 2.x |
//!
//! Values are compared through their JSON description (the contract shared
//! with `tests/python/describe.py` and the CLI): [`value_from_json`] builds a
//! [`Value`] from one, [`check_value`] compares a decoded value with one
//! (arrays included, by dtype, shape and SHA-256 of their raw bytes).
//!
//! ```
//! use mmappickle_codec::Value;
//! use mmappickle_conformance::{check_value, value_from_json};
//!
//! let description = serde_json::json!({"tuple": [1, {"int": "18446744073709551616"}, null]});
//! let value = value_from_json(&description).unwrap();
//! assert_eq!(value, Value::Tuple(vec![Value::Int(1), Value::from(1u128 << 64), Value::None]));
//! assert!(check_value(&description, &value).is_ok());
//! assert!(check_value(&serde_json::json!([1]), &value).is_err());
//! ```

#![deny(missing_docs)]

mod prerequisites;

pub use prerequisites::stop_missing;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use mmappickle_codec::{BigInt, Construct, Global, Object, Value};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the conformance crate lives one level below the workspace root")
        .to_path_buf()
}

/// `tests/fixtures/`: the Python-made fixture files and their manifest.
pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests").join("fixtures")
}

/// `tests/python/`: the Python scripts of the conformance suite.
pub fn python_scripts_dir() -> PathBuf {
    workspace_root().join("tests").join("python")
}

/// `tests/fixtures/manifest.json`, parsed: per file, its live entries in file
/// order (`[key, description]`), deleted keys and commit number.
pub fn manifest() -> Json {
    let path = fixtures_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn python_from(variable: &str, venv: &str) -> PathBuf {
    prerequisites::python(&workspace_root(), variable, venv)
}

/// The Python interpreter with `mmappickle==1.0` and `numpy==1.23.5`.
pub fn python_mmappickle() -> PathBuf {
    python_from("MMAPPICKLE_PYTHON", "py-mmappickle")
}

/// The Python interpreter with the newest numpy 2.x (no mmappickle).
pub fn python_numpy2() -> PathBuf {
    python_from("MMAPPICKLE_PYTHON_NUMPY2", "py-numpy2")
}

/// Runs `script` with `python` and the given arguments; panics with Python's
/// output when it exits non-zero, returns its standard output otherwise.
pub fn run_python(python: &Path, script: &str, args: &[&OsStr]) -> String {
    let mut command = Command::new(python);
    command.arg("-c").arg(script).args(args);
    run_to_success(command, python)
}

/// Runs the script `tests/python/<script_name>` with `python` and the given
/// arguments; panics with Python's output when it exits non-zero, returns its
/// standard output otherwise.
pub fn run_python_script(python: &Path, script_name: &str, args: &[&OsStr]) -> String {
    let mut command = Command::new(python);
    command
        .arg(python_scripts_dir().join(script_name))
        .args(args)
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_to_success(command, python)
}

/// A private copy of the running test binary, run again as a child process that executes
/// one test, `test_name`, with its job in the environment variable `job_variable`.
///
/// A copy, because other builds in the shared target directory may replace the binary
/// itself while a long test runs.
#[derive(Debug)]
pub struct WorkerExe {
    _dir: tempfile::TempDir,
    path: PathBuf,
    test_name: &'static str,
    job_variable: &'static str,
}

impl WorkerExe {
    /// Copies the running test binary; its children run `test_name` with `job_variable` set.
    pub fn new(test_name: &'static str, job_variable: &'static str) -> WorkerExe {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(test_name);
        std::fs::copy(std::env::current_exe().unwrap(), &path).unwrap();
        // A child forked by another test thread while the copy was open for writing holds
        // that descriptor until its own exec: until then the copy cannot run (ETXTBSY). It is
        // run once, listing no test, until it can.
        for attempt in 0.. {
            let listed = Command::new(&path)
                .args(["--list", "--exact", "no test has this name"])
                .output();
            match listed {
                Err(error)
                    if error.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 100 =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => panic!("cannot run the copy of the test binary: {error}"),
                Ok(_) => break,
            }
        }
        WorkerExe {
            _dir: dir,
            path,
            test_name,
            job_variable,
        }
    }

    /// The command running the worker test alone, with `job`.
    pub fn command(&self, job: &str) -> Command {
        let mut command = Command::new(&self.path);
        self.add_worker_args(&mut command, job);
        command
    }

    /// The worker command run through `sh` after `ulimit LIMIT` (a resource limit of the
    /// child alone).
    pub fn limited_command(&self, job: &str, limit: &str) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
            .arg(&self.path);
        self.add_worker_args(&mut command, job);
        command
    }

    fn add_worker_args(&self, command: &mut Command, job: &str) {
        command
            .args([self.test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(self.job_variable, job);
    }
}

fn run_to_success(command: Command, python: &Path) -> String {
    match outcome_of(command, python) {
        Ok(stdout) => stdout,
        Err(explanation) => panic!("{explanation}"),
    }
}

/// Runs `command`: its standard output when it exits zero, else an
/// explanation with both of its outputs.
fn outcome_of(mut command: Command, python: &Path) -> Result<String, String> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "Python failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// How `tests/python/check_file.py` reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonReader {
    /// `mmappickle.mmapdict(path, readonly=True)` (numpy 1.23.5): every key,
    /// arrays must come back as `numpy.memmap`.
    MmapDict,
    /// Plain `pickle.load` of the whole file, numpy 1.23.5.
    PickleNumpy1,
    /// Plain `pickle.load` of the whole file, the newest numpy 2.x.
    PickleNumpy2,
}

/// Checks with Python that `file` holds exactly `spec["entries"]`
/// (`[[key, description], ...]`, in file order); `spec` may also give
/// `"commit_number"` and `"mmapdict_skip"` (see `tests/python/check_file.py`).
/// Panics with Python's explanation when it does not.
pub fn check_file_with_python(reader: PythonReader, file: &Path, spec: &Json) {
    if let Err(explanation) = try_check_file_with_python(reader, file, spec) {
        panic!("{explanation}");
    }
}

/// [`check_file_with_python`] that returns Python's explanation instead of
/// panicking (for the cells of the matrix that are expected to fail).
pub fn try_check_file_with_python(
    reader: PythonReader,
    file: &Path,
    spec: &Json,
) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let spec_path = dir.path().join("expected.json");
    std::fs::write(&spec_path, spec.to_string()).expect("writing the expected entries");
    let (python, mode) = match reader {
        PythonReader::MmapDict => (python_mmappickle(), "mmapdict"),
        PythonReader::PickleNumpy1 => (python_mmappickle(), "pickle"),
        PythonReader::PickleNumpy2 => (python_numpy2(), "pickle"),
    };
    let mut command = Command::new(&python);
    command
        .arg(python_scripts_dir().join("check_file.py"))
        .args([OsStr::new(mode), file.as_os_str(), spec_path.as_os_str()])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    outcome_of(command, &python).map(drop)
}

/// The `(major, minor)` version of numpy in the numpy 2.x environment.
pub fn numpy2_version() -> (u32, u32) {
    let text = run_python(
        &python_numpy2(),
        "import numpy; print(numpy.__version__)",
        &[],
    );
    let mut parts = text.trim().split('.').map(|part| part.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => panic!("cannot parse the numpy version {text:?}"),
    }
}

/// Writes `file` with the Python library from `entries` (`[[key,
/// description], ...]`, see `tests/python/write_file.py`), in order.
pub fn write_file_with_python(file: &Path, entries: &Json) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input_path = dir.path().join("entries.json");
    let input = serde_json::json!({ "entries": entries });
    std::fs::write(&input_path, input.to_string()).expect("writing the entries");
    let args = [file.as_os_str(), input_path.as_os_str()];
    run_python_script(&python_mmappickle(), "write_file.py", &args);
}

/// The [`Value`] that a JSON description stands for (every form but arrays,
/// which a description only identifies by hash).
pub fn value_from_json(description: &Json) -> Result<Value, String> {
    Ok(match description {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::Float(n.as_f64().ok_or_else(|| format!("bad number {n}"))?)
            }
        }
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::List(values_from_json(items)?),
        Json::Object(map) => {
            let mut fields = map.iter();
            let (Some((tag, inner)), None) = (fields.next(), fields.next()) else {
                return Err(format!("a tagged description has one key: {description}"));
            };
            tagged_value_from_json(tag, inner)?
        }
    })
}

fn tagged_value_from_json(tag: &str, inner: &Json) -> Result<Value, String> {
    let as_str = || {
        inner
            .as_str()
            .ok_or_else(|| format!("{tag}: expected a string, found {inner}"))
    };
    let as_array = || {
        inner
            .as_array()
            .ok_or_else(|| format!("{tag}: expected an array, found {inner}"))
    };
    Ok(match tag {
        "int" => int_from_decimal(as_str()?)?,
        "float" => match as_str()? {
            "nan" => Value::Float(f64::NAN),
            "inf" => Value::Float(f64::INFINITY),
            "-inf" => Value::Float(f64::NEG_INFINITY),
            other => return Err(format!("float: unknown special value {other:?}")),
        },
        "bytes" => Value::Bytes(base64_decode(as_str()?)?),
        "bytearray" => Value::ByteArray(base64_decode(as_str()?)?),
        "tuple" => Value::Tuple(values_from_json(as_array()?)?),
        "set" => Value::Set(values_from_json(as_array()?)?),
        "frozenset" => Value::FrozenSet(values_from_json(as_array()?)?),
        "dict" => Value::Dict(pairs_from_json(inner)?),
        "global" => match as_array()?.as_slice() {
            [Json::String(module), Json::String(name)] => Value::Global(Global::new(module, name)),
            _ => return Err(format!("global: expected [module, name], found {inner}")),
        },
        "object" => object_from_json(inner)?,
        other => {
            return Err(format!(
                "no value can be built from a {other:?} description"
            ))
        }
    })
}

fn values_from_json(items: &[Json]) -> Result<Vec<Value>, String> {
    items.iter().map(value_from_json).collect()
}

/// `[[k, v], ...]` or `{"dict": [[k, v], ...]}` as key-value pairs.
fn pairs_from_json(description: &Json) -> Result<Vec<(Value, Value)>, String> {
    let pairs = match description.get("dict") {
        Some(inner) => inner,
        None => description,
    };
    let pairs = pairs
        .as_array()
        .ok_or_else(|| format!("expected [[key, value], ...], found {description}"))?;
    pairs
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([key, value]) => Ok((value_from_json(key)?, value_from_json(value)?)),
            _ => Err(format!("expected a [key, value] pair, found {pair}")),
        })
        .collect()
}

fn object_from_json(inner: &Json) -> Result<Value, String> {
    let field = |name: &str| inner.get(name);
    let callable = value_from_json(field("callable").ok_or("object: no callable")?)?;
    let args = match field("args") {
        Some(Json::Array(items)) => values_from_json(items)?,
        Some(other) => return Err(format!("object: args must be an array, found {other}")),
        None => Vec::new(),
    };
    let is_new = field("new").and_then(Json::as_bool).unwrap_or(false);
    let construct = match (is_new, field("kwargs")) {
        (true, Some(_)) => Construct::NewObjEx,
        (true, None) => Construct::NewObj,
        (false, _) => Construct::Reduce,
    };
    let mut object = Object::new(construct, callable, args);
    if let Some(kwargs) = field("kwargs") {
        object.kwargs = pairs_from_json(kwargs)?;
    }
    if let Some(Json::Array(items)) = field("listitems") {
        object.list_items = values_from_json(items)?;
    }
    if let Some(items) = field("dictitems") {
        object.dict_items = pairs_from_json(items)?;
    }
    if let Some(state) = field("state") {
        object.state = Some(value_from_json(state)?);
    }
    Ok(Value::from(object))
}

/// An integer from its decimal text, as Python writes it (`-` sign allowed).
fn int_from_decimal(text: &str) -> Result<Value, String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("int: {text:?} is not a decimal integer"));
    }
    // Magnitude in little-endian base 256, then one zero byte for the sign.
    let mut magnitude: Vec<u8> = Vec::new();
    for digit in digits.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in magnitude.iter_mut() {
            let next = u32::from(*byte) * 10 + carry;
            *byte = (next & 0xff) as u8;
            carry = next >> 8;
        }
        while carry > 0 {
            magnitude.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    magnitude.push(0);
    if negative {
        // Two's complement: invert, add one.
        let mut carry = true;
        for byte in magnitude.iter_mut() {
            let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
            *byte = sum;
            carry = overflow;
        }
    }
    Ok(BigInt::value_from_le_bytes(&magnitude))
}

/// Checks that `value` is what `description` describes. Arrays
/// (`{"ndarray": {dtype, shape, sha256}}`) and masked arrays are checked
/// against the `reshape(fromstring(raw, dtype), shape)` expression that
/// mmappickle stores; everything else through [`value_from_json`].
pub fn check_value(description: &Json, value: &Value) -> Result<(), String> {
    if let Some(array) = description.get("ndarray") {
        return check_array(array, value);
    }
    if let Some(masked) = description.get("masked") {
        let args = reduce_args(value, "numpy.ma.core", "MaskedArray")?;
        let [data, mask] = args else {
            return Err(format!("a masked array has 2 arguments, found {args:?}"));
        };
        check_array(&masked["data"], data).map_err(|e| format!("data: {e}"))?;
        return check_array(&masked["mask"], mask).map_err(|e| format!("mask: {e}"));
    }
    let expected = value_from_json(description)?;
    if &expected == value {
        Ok(())
    } else {
        Err(format!(
            "expected {}, found {}",
            abbreviated(&expected),
            abbreviated(value)
        ))
    }
}

fn abbreviated(value: &Value) -> String {
    let mut text = format!("{value:?}");
    if text.len() > 400 {
        let mut cut = 400;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// The arguments of `module.name(*args)` built by REDUCE.
fn reduce_args<'a>(value: &'a Value, module: &str, name: &str) -> Result<&'a [Value], String> {
    match value {
        Value::Object(object)
            if object.construct == Construct::Reduce
                && object.callable == Value::Global(Global::new(module, name)) =>
        {
            Ok(&object.args)
        }
        other => Err(format!(
            "expected a call of {module}.{name}, found {}",
            abbreviated(other)
        )),
    }
}

fn check_array(description: &Json, value: &Value) -> Result<(), String> {
    let args = reduce_args(value, "numpy.core.fromnumeric", "reshape")?;
    let [flat, Value::Tuple(shape)] = args else {
        return Err(format!("reshape takes (array, shape), found {args:?}"));
    };
    let flat_args = reduce_args(flat, "numpy.core.multiarray", "fromstring")?;
    let [Value::Bytes(raw), Value::Str(dtype)] = flat_args else {
        return Err(format!(
            "fromstring takes (bytes, dtype), found {}",
            abbreviated(flat)
        ));
    };
    let expected_dtype = description["dtype"].as_str().unwrap_or_default();
    if dtype != expected_dtype {
        return Err(format!("dtype {dtype:?}, expected {expected_dtype:?}"));
    }
    let expected_shape = value_from_json(&description["shape"])?;
    if Value::List(shape.clone()) != expected_shape {
        return Err(format!(
            "shape {shape:?}, expected {}",
            description["shape"]
        ));
    }
    let sha256 = sha256_hex(raw);
    let expected_sha256 = description["sha256"].as_str().unwrap_or_default();
    if sha256 != expected_sha256 {
        return Err(format!(
            "raw bytes ({} of them) hash to {sha256}, expected {expected_sha256}",
            raw.len()
        ));
    }
    Ok(())
}

/// The SHA-256 of `data`, in lowercase hex (as the manifest writes it).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what Python's `base64.b64encode` writes).
pub fn base64_encode(data: &[u8]) -> String {
    let mut text = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for position in 0..4 {
            if position <= chunk.len() {
                let sextet = (group >> (18 - 6 * position)) & 0x3f;
                text.push(char::from(BASE64_ALPHABET[sextet as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Decodes standard padded base64.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    let mut data = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut group = 0u32;
    let mut n_bits = 0;
    for c in trimmed.bytes() {
        let sextet = BASE64_ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| format!("{c:?} is not a base64 character"))?;
        group = (group << 6) | sextet as u32;
        n_bits += 6;
        if n_bits >= 8 {
            n_bits -= 8;
            data.push((group >> n_bits) as u8);
            group &= (1 << n_bits) - 1;
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_round_trips_every_length() {
        // Lengths 0..=5 cover no padding, one and two '=' signs.
        for len in 0..=5u8 {
            let data: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(97).wrapping_add(200))
                .collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"\x00\x01\xfe\xff"), "AAH+/w==");
    }

    #[test]
    fn decimal_ints_become_ints_or_bigints() {
        assert_eq!(
            int_from_decimal("-9223372036854775808").unwrap(),
            Value::Int(i64::MIN)
        );
        assert_eq!(
            int_from_decimal("9007199254740992").unwrap(),
            Value::Int(1 << 53)
        );
        assert_eq!(
            int_from_decimal("18446744073709551616").unwrap(),
            Value::from(1u128 << 64)
        );
        assert_eq!(
            int_from_decimal("-18446744073709551616").unwrap(),
            Value::from(-(1i128 << 64))
        );
        assert!(int_from_decimal("12a").is_err());
        assert!(int_from_decimal("-").is_err());
    }

    #[test]
    fn descriptions_build_values() {
        let description =
            json!({"dict": [[1, {"float": "-inf"}], [{"tuple": []}, {"bytes": "AQ=="}]]});
        let expected = Value::Dict(vec![
            (Value::Int(1), Value::Float(f64::NEG_INFINITY)),
            (Value::Tuple(vec![]), Value::Bytes(vec![1])),
        ]);
        assert_eq!(value_from_json(&description).unwrap(), expected);
        let negative_zero = value_from_json(&json!(-0.0)).unwrap();
        assert_eq!(negative_zero, Value::Float(-0.0));
    }

    #[test]
    fn objects_keep_their_construction() {
        let description = json!({"object": {"callable": {"global": ["builtins", "complex"]}, "args": [1.5, -2.0], "new": true}});
        let Value::Object(object) = value_from_json(&description).unwrap() else {
            panic!("an object description builds an object");
        };
        assert_eq!(object.construct, Construct::NewObj);
        assert_eq!(object.args, vec![Value::Float(1.5), Value::Float(-2.0)]);
    }

    #[test]
    fn arrays_are_checked_by_dtype_shape_and_hash() {
        let raw = vec![1u8, 0, 2, 0];
        let global = |m: &str, n: &str| Value::Global(Global::new(m, n));
        let flat = Object::new(
            Construct::Reduce,
            global("numpy.core.multiarray", "fromstring"),
            vec![Value::Bytes(raw.clone()), Value::from("int16")],
        );
        let array = Value::from(Object::new(
            Construct::Reduce,
            global("numpy.core.fromnumeric", "reshape"),
            vec![Value::from(flat), Value::Tuple(vec![Value::Int(2)])],
        ));
        let description =
            json!({"ndarray": {"dtype": "int16", "shape": [2], "sha256": sha256_hex(&raw)}});
        assert_eq!(check_value(&description, &array), Ok(()));
        let wrong_shape =
            json!({"ndarray": {"dtype": "int16", "shape": [1, 2], "sha256": sha256_hex(&raw)}});
        assert!(check_value(&wrong_shape, &array).is_err());
        let wrong_hash =
            json!({"ndarray": {"dtype": "int16", "shape": [2], "sha256": sha256_hex(b"")}});
        assert!(check_value(&wrong_hash, &array).is_err());
    }
}
