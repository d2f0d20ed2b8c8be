//! Element types of tensors in safetensors and GGUF files, and how to read them as numbers.

use half::{bf16, f16};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    F8E4M3,
    F8E5M2,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
    /// A GGML block-quantised type: `block` elements stored in `bytes` bytes.
    Quant {
        name: &'static str,
        block: u64,
        bytes: u64,
    },
}

impl DType {
    /// The safetensors spelling (`"F32"`, `"BF16"` …); `None` for types this reader does not know.
    pub fn from_safetensors(s: &str) -> Option<DType> {
        Some(match s {
            "F64" => DType::F64,
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F8_E4M3" => DType::F8E4M3,
            "F8_E5M2" => DType::F8E5M2,
            "I64" => DType::I64,
            "I32" => DType::I32,
            "I16" => DType::I16,
            "I8" => DType::I8,
            "U64" => DType::U64,
            "U32" => DType::U32,
            "U16" => DType::U16,
            "U8" => DType::U8,
            "BOOL" => DType::Bool,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E5M2 => "F8_E5M2",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
            DType::Quant { name, .. } => name,
        }
    }

    /// Bytes taken by `n` elements, `None` on overflow or when `n` is not whole blocks.
    pub fn bytes_for(&self, n: u64) -> Option<u64> {
        match self {
            DType::Quant { block, bytes, .. } => {
                n.is_multiple_of(*block).then_some(())?;
                (n / block).checked_mul(*bytes)
            }
            _ => n.checked_mul(self.elem_bytes()),
        }
    }

    fn elem_bytes(&self) -> u64 {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F8E4M3 | DType::F8E5M2 | DType::I8 | DType::U8 | DType::Bool => 1,
            DType::Quant { .. } => 0,
        }
    }

    /// Whether [`for_each_value`] can decode this type.
    pub fn decodable(&self) -> bool {
        !matches!(self, DType::Quant { name, .. } if !matches!(*name, "Q8_0" | "Q4_0" | "Q4_1"))
    }
}

/// Calls `f` with every element of `bytes` (little-endian) as an f64. Returns false when the
/// type cannot be decoded (K-quants and other GGML formats beyond Q8_0/Q4_0/Q4_1).
pub fn for_each_value(dtype: DType, bytes: &[u8], mut f: impl FnMut(f64)) -> bool {
    macro_rules! each {
        ($n:literal, $conv:expr) => {
            for c in bytes.chunks_exact($n) {
                let a: [u8; $n] = c.try_into().unwrap();
                f($conv(a));
            }
        };
    }
    match dtype {
        DType::F64 => each!(8, f64::from_le_bytes),
        DType::F32 => each!(4, |a| f32::from_le_bytes(a) as f64),
        DType::F16 => each!(2, |a| f16::from_le_bytes(a).to_f64()),
        DType::BF16 => each!(2, |a| bf16::from_le_bytes(a).to_f64()),
        DType::F8E4M3 => each!(1, |a: [u8; 1]| f8_e4m3(a[0])),
        DType::F8E5M2 => each!(1, |a: [u8; 1]| f8_e5m2(a[0])),
        DType::I64 => each!(8, |a| i64::from_le_bytes(a) as f64),
        DType::I32 => each!(4, |a| i32::from_le_bytes(a) as f64),
        DType::I16 => each!(2, |a| i16::from_le_bytes(a) as f64),
        DType::I8 => each!(1, |a: [u8; 1]| a[0] as i8 as f64),
        DType::U64 => each!(8, |a| u64::from_le_bytes(a) as f64),
        DType::U32 => each!(4, |a| u32::from_le_bytes(a) as f64),
        DType::U16 => each!(2, |a| u16::from_le_bytes(a) as f64),
        DType::U8 | DType::Bool => each!(1, |a: [u8; 1]| a[0] as f64),
        DType::Quant { name: "Q8_0", .. } => {
            for b in bytes.chunks_exact(34) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f64();
                b[2..].iter().for_each(|&q| f(d * (q as i8) as f64));
            }
        }
        DType::Quant { name: "Q4_0", .. } => {
            for b in bytes.chunks_exact(18) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f64();
                let q = &b[2..];
                q.iter().for_each(|&x| f(d * ((x & 0x0f) as f64 - 8.0)));
                q.iter().for_each(|&x| f(d * ((x >> 4) as f64 - 8.0)));
            }
        }
        DType::Quant { name: "Q4_1", .. } => {
            for b in bytes.chunks_exact(20) {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f64();
                let m = f16::from_le_bytes([b[2], b[3]]).to_f64();
                let q = &b[4..];
                q.iter().for_each(|&x| f(d * (x & 0x0f) as f64 + m));
                q.iter().for_each(|&x| f(d * (x >> 4) as f64 + m));
            }
        }
        DType::Quant { .. } => return false,
    }
    true
}

/// The shortest decimal text that reads back to the same value in `dtype`: `5.1` for the f32
/// nearest to 5.1, which as an f64 prints `5.099999904632568`; `0.1` for the f16 nearest to
/// 0.1 (0.0999755859375). `v` holds the element's value exactly. Integer types and f64 print
/// as Rust prints an f64, which is already the shortest round trip.
pub fn shortest(v: f64, dtype: DType) -> String {
    let round: fn(f64) -> f64 = match dtype {
        // Rust's Display for f32 is the shortest text that parses back to the same f32.
        DType::F32 => return format!("{}", v as f32),
        DType::F16 => |x| f16::from_f64(x).to_f64(),
        DType::BF16 => |x| bf16::from_f64(x).to_f64(),
        DType::F8E4M3 => |x| nearest_f8(x, f8_e4m3),
        DType::F8E5M2 => |x| nearest_f8(x, f8_e5m2),
        _ => return format!("{v}"),
    };
    if !v.is_finite() {
        return format!("{v}");
    }
    (1..=17)
        .find_map(|digits| {
            let p: f64 = format!("{v:.*e}", digits - 1).parse().ok()?;
            (round(p) == v).then(|| format!("{p}"))
        })
        .unwrap_or_else(|| format!("{v}"))
}

/// The FP8 value nearest to `x` (there are only 256 to try).
fn nearest_f8(x: f64, decode: fn(u8) -> f64) -> f64 {
    (0..=255u8)
        .map(decode)
        .filter(|v| v.is_finite())
        .min_by(|a, b| (a - x).abs().total_cmp(&(b - x).abs()))
        .unwrap_or(f64::NAN)
}

/// FP8 E5M2: the top byte of an IEEE half.
fn f8_e5m2(b: u8) -> f64 {
    f16::from_bits((b as u16) << 8).to_f64()
}

/// FP8 E4M3FN: 4 exponent bits (bias 7), 3 mantissa bits, no infinities, S.1111.111 is NaN.
fn f8_e4m3(b: u8) -> f64 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 3) & 0x0f) as i32;
    let man = (b & 0x07) as f64;
    if exp == 0x0f && b & 0x07 == 0x07 {
        return f64::NAN;
    }
    if exp == 0 {
        sign * man / 8.0 * 2f64.powi(-6)
    } else {
        sign * (1.0 + man / 8.0) * 2f64.powi(exp - 7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_little_endian_values() {
        let mut out = Vec::new();
        let bytes: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert!(for_each_value(DType::F32, &bytes, |v| out.push(v)));
        assert_eq!(out, [1.5, -2.0]);
        out.clear();
        let bytes: Vec<u8> = [bf16::from_f32(0.5), bf16::from_f32(-3.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        for_each_value(DType::BF16, &bytes, |v| out.push(v));
        assert_eq!(out, [0.5, -3.0]);
        assert_eq!(f8_e4m3(0x38), 1.0); // exponent 7, mantissa 0
        assert_eq!(f8_e4m3(0xc0), -2.0);
        assert!(f8_e4m3(0x7f).is_nan());
    }

    #[test]
    fn floats_print_as_the_shortest_text_of_their_own_type() {
        assert_eq!(shortest(5.1f32 as f64, DType::F32), "5.1");
        assert_eq!(shortest(1.4f32 as f64, DType::F32), "1.4");
        assert_eq!(shortest(5.1, DType::F64), "5.1");
        assert_eq!(shortest(0.1f32 as f64, DType::F64), "0.10000000149011612");
        assert_eq!(shortest(f16::from_f32(0.1).to_f64(), DType::F16), "0.1");
        assert_eq!(
            shortest(bf16::from_f32(1234.5).to_f64(), DType::BF16),
            "1230"
        );
        assert_eq!(
            shortest(f16::from_f32(65504.0).to_f64(), DType::F16),
            "65500"
        );
        assert_eq!(shortest(f8_e4m3(0x3a), DType::F8E4M3), "1.2");
        assert_eq!(shortest(f64::NAN, DType::F16), "NaN");
        assert_eq!(shortest(3.0, DType::I64), "3");
        for v in [1e-7f32, 123456.79, -0.3, 7e30] {
            let text = shortest(v as f64, DType::F32);
            assert_eq!(text.parse::<f32>().unwrap(), v, "{text} reads back");
        }
    }

    #[test]
    fn q8_0_blocks_scale_by_their_delta() {
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let mut out = Vec::new();
        let q = DType::Quant {
            name: "Q8_0",
            block: 32,
            bytes: 34,
        };
        assert!(for_each_value(q, &block, |v| out.push(v)));
        assert_eq!(out.len(), 32);
        assert_eq!(out[0], -8.0);
        assert_eq!(out[31], 7.5);
        assert_eq!(q.bytes_for(64), Some(68));
        assert_eq!(q.bytes_for(33), None);
    }
}
