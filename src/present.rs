//! Dataset and tensor statistics as text, shared by the CLI (`data inspect`, `ckpt inspect`)
//! and the TUI's Datasets and Checkpoints panes.

use descent_io::checkpoint::Checkpoint;
use descent_io::data::ColumnStats;
use descent_io::stats::TensorStats;
use descent_io::tensor::TensorInfo;

/// 538060032 → `538,060,032`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A checkpoint's summary lines: the format's own, then its size in bytes, exactly and for
/// people (`538,060,032 (513.1 MiB)`).
pub fn checkpoint_summary(ck: &Checkpoint) -> Vec<(String, String)> {
    let bytes = ck.bytes();
    let mut lines = ck.summary.clone();
    let text = if bytes < 1024 {
        format!("{bytes}")
    } else {
        format!(
            "{} ({})",
            thousands(bytes),
            descent_panes::human_bytes(bytes)
        )
    };
    lines.push(("bytes".into(), text));
    lines
}

/// name, type, nulls, min, max, mean, std, distinct — numbers through `num`, "—" when absent.
pub fn column_cells(c: &ColumnStats, num: impl Fn(f64) -> String) -> [String; 8] {
    let opt = |v: Option<f64>| v.map_or("—".to_string(), &num);
    [
        c.name.clone(),
        c.dtype.clone(),
        c.nulls.to_string(),
        opt(c.min),
        opt(c.max),
        opt(c.mean),
        opt(c.std),
        format!("{}{}", if c.distinct_capped { "≥" } else { "" }, c.distinct),
    ]
}

/// A tensor's statistics as label/value lines.
pub fn tensor_lines(t: &TensorInfo, s: &TensorStats) -> Vec<(String, String)> {
    vec![
        (
            "shape".into(),
            format!("{} {}", t.dtype.name(), t.shape_text()),
        ),
        ("elements".into(), s.count.to_string()),
        ("mean".into(), format!("{:.6}", s.mean)),
        ("std".into(), format!("{:.6}", s.std)),
        ("min / max".into(), format!("{:.6} / {:.6}", s.min, s.max)),
        ("L2 norm".into(), format!("{:.6}", s.l2)),
        ("zeros".into(), format!("{:.2}%", 100.0 * s.zeros)),
        ("NaN/Inf".into(), format!("{:.2}%", 100.0 * s.nonfinite)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(538_060_032), "538,060,032");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }
}
