//! Python's and numpy's `repr` of scalars: floats of every width, complex numbers, strings,
//! bytes (a leaf: used by the value and array renderings alike).

use mmappickle::f16;

/// The width of a float: what its shortest round-trip digits and numpy's positional
/// range depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatWidth {
    /// `float16`.
    Half,
    /// `float32`.
    Single,
    /// `float64`, Python's `float`.
    Double,
}

impl FloatWidth {
    /// The width of floats of `item_size` bytes (`None` for `float128`, which is not read).
    pub fn of_item_size(item_size: usize) -> Option<FloatWidth> {
        match item_size {
            2 => Some(FloatWidth::Half),
            4 => Some(FloatWidth::Single),
            8 => Some(FloatWidth::Double),
            _ => None,
        }
    }

    /// Bits per float.
    pub fn bits(self) -> usize {
        match self {
            FloatWidth::Half => 16,
            FloatWidth::Single => 32,
            FloatWidth::Double => 64,
        }
    }

    /// Where numpy (from 2.3 on) stops printing a float scalar positionally.
    fn numpy_max_positional(self) -> f64 {
        match self {
            FloatWidth::Half => 1e3,
            FloatWidth::Single => 1e6,
            FloatWidth::Double => 1e16,
        }
    }
}

/// The shortest decimal that reads back as the same float of its width:
/// `digits[0].digits[1..] x 10^exponent`.
struct Shortest {
    negative: bool,
    /// Significant digits, no leading zero unless the value is zero.
    digits: String,
    exponent: i32,
}

impl Shortest {
    /// `x` (finite, and a value of `width`).
    fn of(x: f64, width: FloatWidth) -> Shortest {
        // Rust's `{:e}` prints the shortest round-trip digits of an f32 or f64.
        let text = match width {
            FloatWidth::Double => format!("{x:e}"),
            FloatWidth::Single => format!("{:e}", x as f32),
            FloatWidth::Half => return Shortest::of_half(x).ties_to_even(x, width),
        };
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_start_matches('-');
        Shortest::new(
            x.is_sign_negative(),
            mantissa.chars().filter(|c| *c != '.').collect(),
            exponent.parse().unwrap_or(0),
        )
        .ties_to_even(x, width)
    }

    /// float16 has no shortest printer: the fewest significant digits (at most 5 tell
    /// float16 values apart) whose decimal rounds back to `x`. Near a power of two the
    /// correctly rounded decimal may round to the float below (whose gap is half as wide)
    /// while its neighbour on the other side rounds back: the neighbours are tried too
    /// (only one of them can read back when the nearest does not).
    fn of_half(x: f64) -> Shortest {
        for precision in 0..5usize {
            let text = format!("{:.precision$e}", x.abs());
            let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
            let nearest: u64 = mantissa.replace('.', "").parse().unwrap_or(0);
            let scale = exponent.parse::<i32>().unwrap_or(0) - precision as i32;
            let found = [nearest, nearest + 1, nearest.wrapping_sub(1)]
                .into_iter()
                .find(|candidate| reads_back(x, FloatWidth::Half, *candidate, scale));
            if let Some(digits) = found {
                return Shortest::at_scale(x.is_sign_negative(), digits, scale);
            }
        }
        Shortest::of(x, FloatWidth::Double)
    }

    /// `x` halfway between two decimals of the shortest length that both read back as
    /// it: the one with the even last digit, as numpy's Dragon4 and Python's `repr` choose
    /// (Rust's printer may round the tie up).
    fn ties_to_even(self, x: f64, width: FloatWidth) -> Shortest {
        let scale = self.exponent - (self.digits.len() as i32 - 1);
        // A tie is `x` written exactly by one more digit, a 5: cheap tests first (x a
        // multiple of that digit's place, then roundings), the exact expansion (an f64 has
        // at most 767 significant digits) only for such an `x`.
        if !is_multiple_of_ten_to_the(x, scale - 1) {
            return self;
        }
        let n_digits = self.digits.len();
        let could_be_a_tie = [n_digits, n_digits + 24].iter().all(|&precision| {
            let text = format!("{:.precision$e}", x.abs());
            let mantissa = text.split_once('e').map_or(text.as_str(), |(m, _)| m);
            let below = mantissa.get(n_digits + 1..).unwrap_or("");
            below.starts_with('5') && below[1..].bytes().all(|b| b == b'0')
        });
        if !could_be_a_tie {
            return self;
        }
        let exact = format!("{:.800e}", x.abs());
        let (mantissa, exponent) = exact.split_once('e').unwrap_or((&exact, "0"));
        let exact_digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        // The digits of x above the last place kept, and those below it.
        let kept = exponent.parse::<i32>().unwrap_or(0) - scale + 1;
        let Some((head, tail)) = usize::try_from(kept)
            .ok()
            .and_then(|at| (at > 0 && at < exact_digits.len()).then(|| exact_digits.split_at(at)))
        else {
            return self;
        };
        let is_tie = tail.starts_with('5') && tail[1..].bytes().all(|b| b == b'0');
        let Ok(below) = head.parse::<u64>() else {
            return self;
        };
        let even = if below % 2 == 0 { below } else { below + 1 };
        if is_tie && reads_back(x, width, even, scale) {
            Shortest::at_scale(self.negative, even, scale)
        } else {
            self
        }
    }

    /// `digits x 10^scale`.
    fn at_scale(negative: bool, digits: u64, scale: i32) -> Shortest {
        let digits = digits.to_string();
        let exponent = scale + digits.len() as i32 - 1;
        Shortest::new(negative, digits, exponent)
    }

    /// Trailing zeros dropped from `digits`.
    fn new(negative: bool, mut digits: String, exponent: i32) -> Shortest {
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
        Shortest {
            negative,
            digits,
            exponent,
        }
    }

    /// `123.45`, `0.00012`; a whole number as `1.0` with `one_zero`, else as `1`.
    fn positional(&self, one_zero: bool) -> String {
        let mut out = String::from(if self.negative { "-" } else { "" });
        let digits = self.digits.as_str();
        if self.exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-self.exponent - 1) as usize));
            out.push_str(digits);
            return out;
        }
        let int_len = self.exponent as usize + 1;
        if digits.len() > int_len {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        } else {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
            if one_zero {
                out.push_str(".0");
            }
        }
        out
    }

    /// `1.2345e-05`, `1e+16`: at least two exponent digits, as C's `printf` writes them.
    fn scientific(&self) -> String {
        let mut out = String::from(if self.negative { "-" } else { "" });
        out.push_str(&self.digits[..1]);
        if self.digits.len() > 1 {
            out.push('.');
            out.push_str(&self.digits[1..]);
        }
        let sign = if self.exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", self.exponent.unsigned_abs()));
        out
    }
}

/// Whether `x` may be a whole multiple of `10^power`: false when a negative `power` asks
/// for fewer binary fraction digits than `x` has (true otherwise, left to exact tests).
fn is_multiple_of_ten_to_the(x: f64, power: i32) -> bool {
    let bits = x.to_bits();
    let biased_exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = match biased_exponent {
        0 => (fraction, -1074),
        _ => (fraction | (1 << 52), biased_exponent - 1075),
    };
    // x = mantissa * 2^exponent has binary digits down to 2^lowest; a multiple of 10^power
    // (= 2^power * 5^power) for power < 0 has none below 2^power.
    let lowest = exponent + mantissa.trailing_zeros().min(63) as i32;
    power >= 0 || mantissa == 0 || lowest >= power
}

/// Whether `digits x 10^scale` (with `x`'s sign) reads back as `x` at `width`.
fn reads_back(x: f64, width: FloatWidth, digits: u64, scale: i32) -> bool {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let text = format!("{sign}{digits}e{scale}");
    match width {
        FloatWidth::Double => text.parse::<f64>().is_ok_and(|back| back == x),
        FloatWidth::Single => text.parse::<f32>().is_ok_and(|back| back == x as f32),
        FloatWidth::Half => text
            .parse::<f64>()
            .is_ok_and(|back| f16::from_f64(back).to_bits() == f16::from_f64(x).to_bits()),
    }
}

/// `nan`, `inf`, `-inf`, or `None` for a finite `x`.
fn non_finite(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("nan")
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below
/// 1e-4 and from 1e16 on, with a signed two-digit exponent.
pub fn float_repr(x: f64) -> String {
    python_float_text(x, FloatWidth::Double, true)
}

/// A float of `width` written the way Python writes a float: its shortest digits,
/// positional from 1e-4 up to 1e16; a whole number as `1.0` with `one_zero`, else as `1`
/// (the parts of a complex).
pub fn python_float_text(x: f64, width: FloatWidth, one_zero: bool) -> String {
    if let Some(text) = non_finite(x) {
        return text.to_owned();
    }
    let shortest = Shortest::of(x, width);
    if (-4..16).contains(&shortest.exponent) {
        shortest.positional(one_zero)
    } else {
        shortest.scientific()
    }
}

/// Python's `repr(complex)`: `(1.5-2j)`, or `2j` when the real part is +0.
pub fn complex_repr(real: f64, imag: f64) -> String {
    let part = |x| python_float_text(x, FloatWidth::Double, false);
    if real == 0.0 && real.is_sign_positive() {
        return format!("{}j", part(imag));
    }
    let imag = part(imag);
    let sign = if imag.starts_with('-') { "" } else { "+" };
    format!("({}{sign}{imag}j)", part(real))
}

/// numpy 2's text of a float scalar of `width` (what `np.float32(...)` holds): its
/// shortest digits, positional from 1e-4 up to 1e3, 1e6 or 1e16 (float16, float32,
/// float64), else scientific; a whole number as `1.0` with `one_zero`, else as `1` (the
/// parts of a complex); with `sign`, a `+` before what is not negative.
pub fn numpy_float_text(x: f64, width: FloatWidth, one_zero: bool, sign: bool) -> String {
    let mut text = match non_finite(x) {
        Some(text) => text.to_owned(),
        None => {
            let shortest = Shortest::of(x, width);
            let magnitude = x.abs();
            if x == 0.0 || (1e-4..width.numpy_max_positional()).contains(&magnitude) {
                shortest.positional(one_zero)
            } else {
                shortest.scientific()
            }
        }
    };
    if sign && !text.starts_with('-') {
        text.insert(0, '+');
    }
    text
}

/// The float64 nearest to the shortest digits of `x` at `width` (`0.1` for float32's
/// 0.100000001490116...): what numpy prints, as a Python float.
pub fn shortest_as_double(x: f64, width: FloatWidth) -> f64 {
    if width == FloatWidth::Double || !x.is_finite() {
        return x;
    }
    let shortest = Shortest::of(x, width);
    let sign = if shortest.negative { "-" } else { "" };
    format!(
        "{sign}{}e{}",
        shortest.digits,
        shortest.exponent - shortest.digits.len() as i32 + 1
    )
    .parse()
    .unwrap_or(x)
}

/// Python's `repr(str)`: single quotes unless the text has one and no double.
pub fn str_repr(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_str_repr(text, &mut out);
    out
}

/// [`str_repr`] of `text`, pushed onto `out`.
pub fn push_str_repr(text: &str, out: &mut String) {
    // Most keys and strings are printable ASCII without quotes or backslashes: as they are.
    if text
        .bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'\\' && byte != b'\'')
    {
        out.push('\'');
        out.push_str(text);
        out.push('\'');
        return;
    }
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // What Python's `str.isprintable` rejects among Latin-1.
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr(bytes)`.
pub fn bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push('b');
    out.push(char::from(quote));
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b == quote => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push(char::from(quote));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_does() {
        for (x, python) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e308, "1e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(float_repr(x), python, "{x}");
        }
    }

    #[test]
    fn numpy_digits_break_ties_to_even() {
        // Exactly halfway between two shortest decimals: numpy keeps the even digit.
        let single = -1_716_473.25; // a float32 value
        assert_eq!(
            numpy_float_text(single, FloatWidth::Single, true, false),
            "-1.7164732e+06"
        );
        assert_eq!(
            numpy_float_text(0.046875, FloatWidth::Half, true, false),
            "0.04688"
        );
        // 2^-6: the nearest 4-digit decimal, 0.01562, reads back as the float16 below.
        assert_eq!(
            numpy_float_text(0.015625, FloatWidth::Half, true, false),
            "0.01563"
        );
        assert_eq!(
            numpy_float_text(65504.0, FloatWidth::Half, false, true),
            "+6.55e+04"
        );
        assert_eq!(complex_repr(-0.0, f64::NAN), "(-0+nanj)");
    }

    #[test]
    fn strings_and_bytes_quote_as_python_does() {
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(str_repr("tab\there\x01é"), "'tab\\there\\x01é'");
        assert_eq!(str_repr("key 42 ~\"!"), "'key 42 ~\"!'");
        assert_eq!(str_repr("back\\slash"), "'back\\\\slash'");
        assert_eq!(str_repr("del\x7f"), "'del\\x7f'");
        assert_eq!(bytes_repr(b"\x00ab'"), "b\"\\x00ab'\"");
        assert_eq!(bytes_repr(b"\\\xff"), "b'\\\\\\xff'");
    }
}
