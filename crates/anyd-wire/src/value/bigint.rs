//! Arithmetic for [`Value::BigInt`]: decimal text to and from little-endian
//! two's complement bytes, and normalising an integer into `Int` or `BigInt`.
//!
//! This is not a bignum library: it owns only the conversions that `Value`'s
//! serde glue needs (writing a big integer as a decimal string, and reading
//! one back). Both directions are quadratic in the number of digits, so both
//! refuse numbers longer than [`MAX_DIGITS`], as CPython does by default for
//! `int` ↔ `str` (its `sys.int_info.default_max_str_digits` is 4300), for
//! the same reason: a peer must not be able to make us spin on one integer.

use super::Value;

/// The longest decimal we write or read, matching CPython's default limit.
pub(crate) const MAX_DIGITS: usize = 4300;

/// Nine decimal digits: the largest power of ten that fits in a `u32` limb.
const LIMB_DECIMAL: u32 = 1_000_000_000;

/// Writes little-endian two's complement `bytes` as a decimal number.
///
/// `None` when the result would be longer than [`MAX_DIGITS`] digits. An
/// empty slice is zero, as in pickle's `LONG1` with length 0.
pub(crate) fn to_decimal(bytes: &[u8]) -> Option<String> {
    let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
    let magnitude = if negative {
        negate(bytes)
    } else {
        bytes.to_vec()
    };
    // A number of n significant bytes has at least (n - 1) * log10(256)
    // ≈ 2.408 * (n - 1) digits. Refusing on that lower bound keeps the
    // division loop below from ever running on a huge input; the exact digit
    // count is checked at the end.
    if significant_len(&magnitude).saturating_sub(1) * 2408 / 1000 > MAX_DIGITS {
        return None;
    }
    let mut limbs = to_limbs(&magnitude);
    // Groups of nine digits, least significant first.
    let mut groups = Vec::new();
    while !limbs.is_empty() {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            // cur < 10^9 * 2^32, so the quotient fits in 32 bits.
            *limb = (cur / u64::from(LIMB_DECIMAL)) as u32;
            rem = cur % u64::from(LIMB_DECIMAL);
        }
        groups.push(rem as u32);
        trim_limbs(&mut limbs);
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    match groups.split_last() {
        None => out.push('0'),
        Some((first, rest)) => {
            out.push_str(&first.to_string());
            for group in rest.iter().rev() {
                out.push_str(&format!("{group:09}"));
            }
        }
    }
    if out.trim_start_matches('-').len() > MAX_DIGITS {
        return None;
    }
    Some(out)
}

/// Parses an optionally negative decimal integer into `Int` or `BigInt`.
///
/// `None` for anything but an optional `-` followed by 1 to [`MAX_DIGITS`]
/// ASCII digits.
pub(crate) fn from_decimal(text: &str) -> Option<Value> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut limbs: Vec<u32> = Vec::new();
    // Consume nine digits at a time (the first group may be shorter), so each
    // step is one multiply-add by a power of ten over the limbs.
    let digits = digits.as_bytes();
    let head = digits.len() % 9;
    let groups = std::iter::once(&digits[..head])
        .filter(|g| !g.is_empty())
        .chain(digits[head..].chunks(9));
    for group in groups {
        let scale = 10u64.pow(group.len() as u32);
        let mut carry = group
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        for limb in limbs.iter_mut() {
            let cur = u64::from(*limb) * scale + carry;
            *limb = cur as u32;
            carry = cur >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let magnitude: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    Some(from_magnitude(negative, &magnitude))
}

/// The `Value` for a `u128`: `Int` when it fits in `i128`, else `BigInt`.
pub(crate) fn from_u128(v: u128) -> Value {
    match i128::try_from(v) {
        Ok(i) => Value::Int(i),
        Err(_) => from_magnitude(false, &v.to_le_bytes()),
    }
}

/// The `u128` held by a `BigInt`'s bytes, if it is non-negative and fits.
pub(crate) fn to_u128(bytes: &[u8]) -> Option<u128> {
    if bytes.last().is_some_and(|b| b & 0x80 != 0) || significant_len(bytes) > 16 {
        return None;
    }
    let mut buf = [0u8; 16];
    let len = significant_len(bytes);
    buf[..len].copy_from_slice(&bytes[..len]);
    Some(u128::from_le_bytes(buf))
}

/// Builds the normal form of `±magnitude` (unsigned little-endian bytes):
/// `Int` when it fits in `i128`, otherwise `BigInt` with minimal bytes.
fn from_magnitude(negative: bool, magnitude: &[u8]) -> Value {
    // One spare byte makes room for the sign bit whatever the magnitude.
    let mut bytes = magnitude[..significant_len(magnitude)].to_vec();
    bytes.push(0);
    if negative {
        bytes = negate(&bytes);
    }
    // Drop sign-extension bytes the byte below already implies.
    while let [.., below, last] = bytes[..] {
        let redundant = (last == 0x00 && below & 0x80 == 0) || (last == 0xff && below & 0x80 != 0);
        if !redundant {
            break;
        }
        bytes.pop();
    }
    if bytes.len() <= 16 {
        let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            0xff
        } else {
            0x00
        };
        let mut buf = [fill; 16];
        buf[..bytes.len()].copy_from_slice(&bytes);
        Value::Int(i128::from_le_bytes(buf))
    } else {
        Value::BigInt(bytes)
    }
}

/// Two's complement negation at the same width (invert, add one).
fn negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for byte in out.iter_mut() {
        let (sum, overflow) = byte.overflowing_add(1);
        *byte = sum;
        if !overflow {
            break;
        }
    }
    out
}

/// Length of an unsigned little-endian number without its high zero bytes.
fn significant_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// Unsigned little-endian bytes as `u32` limbs, least significant first,
/// without high zero limbs.
fn to_limbs(bytes: &[u8]) -> Vec<u32> {
    let mut limbs: Vec<u32> = bytes
        .chunks(4)
        .map(|c| {
            let mut buf = [0u8; 4];
            buf[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(buf)
        })
        .collect();
    trim_limbs(&mut limbs);
    limbs
}

fn trim_limbs(limbs: &mut Vec<u32>) {
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `2**200`, bytes as CPython's `pickle.encode_long` writes them.
    const TWO_200: &str = "1606938044258990275541962092341162602522202993782792835301376";
    /// `-(2**130)`.
    const MINUS_TWO_130: &str = "-1361129467683753853853498429727072845824";

    fn two_200_bytes() -> Vec<u8> {
        let mut b = vec![0u8; 25];
        b.push(1);
        b
    }

    fn minus_two_130_bytes() -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b.push(0xfc);
        b
    }

    #[test]
    fn to_decimal_known_values() {
        assert_eq!(to_decimal(&two_200_bytes()).as_deref(), Some(TWO_200));
        assert_eq!(
            to_decimal(&minus_two_130_bytes()).as_deref(),
            Some(MINUS_TWO_130)
        );
        assert_eq!(to_decimal(&[]).as_deref(), Some("0"));
        assert_eq!(to_decimal(&[0xff]).as_deref(), Some("-1"));
        assert_eq!(to_decimal(&[0x80]).as_deref(), Some("-128"));
        assert_eq!(
            to_decimal(&i128::MIN.to_le_bytes()),
            Some(i128::MIN.to_string())
        );
        // pickle.encode_long(2**128 - 1)
        let mut u128_max = vec![0xff; 16];
        u128_max.push(0);
        assert_eq!(to_decimal(&u128_max), Some(u128::MAX.to_string()));
    }

    #[test]
    fn from_decimal_known_values() {
        assert_eq!(from_decimal(TWO_200), Some(Value::BigInt(two_200_bytes())));
        assert_eq!(
            from_decimal(MINUS_TWO_130),
            Some(Value::BigInt(minus_two_130_bytes()))
        );
        assert_eq!(from_decimal("0"), Some(Value::Int(0)));
        assert_eq!(from_decimal("-0"), Some(Value::Int(0)));
        assert_eq!(
            from_decimal(&i128::MIN.to_string()),
            Some(Value::Int(i128::MIN))
        );
        assert_eq!(
            from_decimal(&i128::MAX.to_string()),
            Some(Value::Int(i128::MAX))
        );
        // pickle.encode_long(-(2**127) - 1) == ff..ff 7f ff
        let mut below_min = vec![0xff; 15];
        below_min.extend([0x7f, 0xff]);
        assert_eq!(
            from_decimal("-170141183460469231731687303715884105729"),
            Some(Value::BigInt(below_min))
        );
        for bad in ["", "-", "1.5", "+1", "12a", " 1"] {
            assert_eq!(from_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn from_u128_edges() {
        assert_eq!(from_u128(5), Value::Int(5));
        assert_eq!(from_u128(i128::MAX as u128), Value::Int(i128::MAX));
        // pickle.encode_long(2**127) == 00..00 80 00
        let mut two_127 = vec![0u8; 15];
        two_127.extend([0x80, 0x00]);
        assert_eq!(from_u128(1 << 127), Value::BigInt(two_127.clone()));
        assert_eq!(to_u128(&two_127), Some(1 << 127));
        assert_eq!(to_u128(&two_200_bytes()), None);
        assert_eq!(to_u128(&minus_two_130_bytes()), None);
    }

    #[test]
    fn decimal_length_limit() {
        let longest = "9".repeat(MAX_DIGITS);
        let value = from_decimal(&longest).expect("4300 digits parse");
        let Value::BigInt(bytes) = &value else {
            panic!("expected a BigInt, got {value:?}");
        };
        assert_eq!(to_decimal(bytes), Some(longest.clone()));
        assert_eq!(from_decimal(&format!("{longest}9")), None);
        let mut huge = vec![0u8; 4000];
        huge.push(1);
        assert_eq!(to_decimal(&huge), None);
    }

    #[test]
    fn decimal_round_trips_around_limb_boundaries() {
        for exp in [31u32, 32, 63, 64, 95, 96, 127, 128, 200] {
            for delta in [-1i8, 0, 1] {
                for sign in ["", "-"] {
                    let magnitude = pow2_decimal(exp, delta);
                    let text = format!("{sign}{magnitude}");
                    let value = from_decimal(&text).expect("valid decimal");
                    let back = match &value {
                        Value::Int(i) => i.to_string(),
                        Value::BigInt(b) => to_decimal(b).expect("short"),
                        other => panic!("unexpected {other:?}"),
                    };
                    let expected = if text == "-0" { "0".to_owned() } else { text };
                    assert_eq!(back, expected);
                }
            }
        }
    }

    /// `2**exp + delta` in decimal, computed by doubling a digit string so the
    /// test does not depend on the code under test.
    fn pow2_decimal(exp: u32, delta: i8) -> String {
        let mut digits = vec![1u8]; // least significant first
        for _ in 0..exp {
            let mut carry = 0;
            for d in digits.iter_mut() {
                let v = *d * 2 + carry;
                *d = v % 10;
                carry = v / 10;
            }
            if carry > 0 {
                digits.push(carry);
            }
        }
        // delta is -1, 0 or 1 and 2**exp ends in 2, 4, 6 or 8, so no carry.
        digits[0] = (i16::from(digits[0]) + i16::from(delta)) as u8;
        digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
    }
}
