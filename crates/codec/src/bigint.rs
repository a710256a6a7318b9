//! Decimal text <-> [`BigInt`]: protocol 0's `INT` / `LONG` text, and display.

use crate::{BigInt, Value};

/// The longest decimal accepted, as CPython's default `int_max_str_digits`:
/// conversion is quadratic, so longer text would be a denial of service.
pub const MAX_DECIMAL_DIGITS: usize = 4300;

/// Parses signed decimal digits into [`Value::Int`] or [`Value::BigInt`].
/// `None` when the text is not `[+-]?[0-9]+` or has more than [`MAX_DECIMAL_DIGITS`] digits.
pub fn parse_decimal(text: &str) -> Option<Value> {
    if let Ok(small) = text.parse::<i64>() {
        return Some(Value::Int(small));
    }
    let (negative, digits) = match text.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text.as_bytes()),
    };
    if digits.is_empty()
        || digits.len() > MAX_DECIMAL_DIGITS
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    // Magnitude in base 2^32 limbs, little-endian, fed 9 digits at a time.
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
    for chunk in digits.chunks(9) {
        let chunk_value = chunk
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        let scale = 10u64.pow(chunk.len() as u32);
        let mut carry = chunk_value;
        for limb in limbs.iter_mut() {
            let product = u64::from(*limb) * scale + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|limb| limb.to_le_bytes()).collect();
    bytes.push(0); // room for the sign bit
    if negative {
        negate_in_place(&mut bytes);
    }
    Some(BigInt::value_from_le_bytes(&bytes))
}

/// Two's complement negation of little-endian bytes.
fn negate_in_place(bytes: &mut [u8]) {
    let mut carry = true;
    for byte in bytes.iter_mut() {
        let (sum, overflow) = (!*byte).overflowing_add(u8::from(carry));
        *byte = sum;
        carry = overflow;
    }
}

impl BigInt {
    /// The integer in decimal, as Python's `str(int)` writes it.
    ///
    /// Quadratic in the number of digits: meant for display and JSON.
    pub fn to_decimal(&self) -> String {
        let mut bytes = self.to_le_bytes().to_vec();
        let negative = self.is_negative();
        if negative {
            bytes.push(0xff);
            negate_in_place(&mut bytes);
        }
        let mut limbs: Vec<u32> = bytes
            .chunks(4)
            .map(|chunk| {
                let mut word = [0u8; 4];
                word.get_mut(..chunk.len())
                    .unwrap_or_default()
                    .copy_from_slice(chunk);
                u32::from_le_bytes(word)
            })
            .collect();
        // Base 10^9 chunks, least significant first.
        let mut chunks = Vec::new();
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        while !limbs.is_empty() {
            let mut remainder = 0u64;
            for limb in limbs.iter_mut().rev() {
                let current = (remainder << 32) | u64::from(*limb);
                *limb = (current / 1_000_000_000) as u32;
                remainder = current % 1_000_000_000;
            }
            chunks.push(remainder as u32);
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
        }
        let mut text = String::from(if negative { "-" } else { "" });
        let mut iter = chunks.iter().rev();
        text.push_str(&iter.next().map_or("0".to_owned(), u32::to_string));
        for chunk in iter {
            text.push_str(&format!("{chunk:09}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_big_values() {
        assert_eq!(parse_decimal("-42"), Some(Value::Int(-42)));
        assert_eq!(parse_decimal("+7"), Some(Value::Int(7)));
        assert_eq!(parse_decimal("0x10"), None);
        assert_eq!(parse_decimal(""), None);
        assert_eq!(
            parse_decimal("9223372036854775808"),
            Some(Value::from(1u128 << 63))
        );
        assert_eq!(
            parse_decimal("-9223372036854775809"),
            Some(Value::from(-(1i128 << 63) - 1))
        );
    }

    #[test]
    fn decimal_round_trip() {
        for text in [
            "9223372036854775808",
            "-9223372036854775809",
            "340282366920938463463374607431768211456",
            "-1000000000000000000000000000000000000000000001",
        ] {
            let Some(Value::BigInt(big)) = parse_decimal(text) else {
                panic!("{text} is not a BigInt");
            };
            assert_eq!(big.to_decimal(), text);
        }
    }

    #[test]
    fn too_many_digits() {
        assert_eq!(parse_decimal(&"9".repeat(MAX_DECIMAL_DIGITS + 1)), None);
        assert!(parse_decimal(&"9".repeat(MAX_DECIMAL_DIGITS)).is_some());
    }
}
