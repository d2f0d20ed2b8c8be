//! Dataset and tensor statistics as text, shared by the CLI (`data inspect`, `ckpt inspect`)
//! and the TUI's Datasets and Checkpoints panes.

use descent_io::data::ColumnStats;
use descent_io::stats::TensorStats;
use descent_io::tensor::TensorInfo;

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
