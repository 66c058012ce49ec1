//! Avro binary primitives (spec 1.11 "Binary Encoding"), written straight into the
//! output buffer: zigzag varints, IEEE-754 little-endian floats, length-prefixed
//! bytes and strings, union branch indices.

#[inline]
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[inline]
pub(crate) fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_bytes(out, s.as_bytes());
}

#[inline]
pub(crate) fn write_float(out: &mut Vec<u8>, f: f32) {
    out.extend_from_slice(&f.to_le_bytes());
}

#[inline]
pub(crate) fn write_double(out: &mut Vec<u8>, d: f64) {
    out.extend_from_slice(&d.to_le_bytes());
}

#[inline]
pub(crate) fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.push(u8::from(b));
}

/// `["null","long"]`-style optional long: branch 0 null, branch 1 value.
#[inline]
pub(crate) fn write_opt_long(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(2); // zigzag(1)
            write_long(out, v);
        }
    }
}

/// `["null","string"]`-style optional string.
#[inline]
pub(crate) fn write_opt_str(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(2);
            write_str(out, v);
        }
    }
}

/// Big-endian two's-complement bytes, minimal length, of a signed decimal integer
/// given as its digits (what Connect's `Decimal` logical type stores: the unscaled
/// value, `BigInteger.toByteArray()`).
pub(crate) fn unscaled_bytes(negative: bool, digits: &[u8]) -> Vec<u8> {
    // Fast path: up to 38 digits fit i128.
    if digits.len() <= 38 {
        let mut v: i128 = 0;
        for d in digits {
            v = v * 10 + i128::from(d - b'0');
        }
        if negative {
            v = -v;
        }
        return minimal_be(&v.to_be_bytes());
    }
    // Magnitude in base 2^32 limbs, little-endian.
    let mut limbs: Vec<u32> = vec![0];
    for d in digits {
        let mut carry = u64::from(d - b'0');
        for limb in limbs.iter_mut() {
            let x = u64::from(*limb) * 10 + carry;
            *limb = x as u32;
            carry = x >> 32;
        }
        if carry > 0 {
            limbs.push(carry as u32);
        }
    }
    let mut be: Vec<u8> = vec![0]; // sign byte room
    for limb in limbs.iter().rev() {
        be.extend_from_slice(&limb.to_be_bytes());
    }
    if negative {
        // Two's complement: invert and add one.
        for b in be.iter_mut() {
            *b = !*b;
        }
        for b in be.iter_mut().rev() {
            let (n, overflow) = b.overflowing_add(1);
            *b = n;
            if !overflow {
                break;
            }
        }
    }
    minimal_be(&be)
}

/// Drops redundant sign-extension bytes.
fn minimal_be(b: &[u8]) -> Vec<u8> {
    let mut start = 0;
    while start + 1 < b.len() {
        let (cur, next) = (b[start], b[start + 1]);
        if (cur == 0 && next & 0x80 == 0) || (cur == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    b[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag() {
        let enc = |v| {
            let mut o = Vec::new();
            write_long(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(i64::MIN).len(), 10);
    }

    #[test]
    fn unscaled() {
        assert_eq!(unscaled_bytes(false, b"0"), [0]);
        assert_eq!(unscaled_bytes(false, b"127"), [0x7f]);
        assert_eq!(unscaled_bytes(false, b"128"), [0x00, 0x80]);
        assert_eq!(unscaled_bytes(true, b"128"), [0x80]);
        assert_eq!(unscaled_bytes(true, b"129"), [0xff, 0x7f]);
        assert_eq!(unscaled_bytes(false, b"1999"), [0x07, 0xcf]);
        // 40 digits takes the slow path; compare with the fast one on a shared value.
        let big = b"1234567890123456789012345678901234567890";
        let slow = unscaled_bytes(false, big);
        assert_eq!(slow.len(), 17);
        let neg = unscaled_bytes(true, big);
        assert_eq!(neg[0] & 0x80, 0x80);
        let small = b"12345678901234567890123456789012345678";
        // 40 digits (leading zeros) take the limb path; 38 the i128 path: same bytes.
        let limbs_path = unscaled_bytes(false, &[b"00", &small[..]].concat());
        assert_eq!(limbs_path, unscaled_bytes(false, small));
        assert_eq!(
            unscaled_bytes(true, &[b"00", &small[..]].concat()),
            unscaled_bytes(true, small)
        );
    }
}
