//! `ckpt diff A B`: which tensors changed, by how much, and which were added, removed or
//! reshaped.

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::stats::values;
use crate::tensor::TensorInfo;

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// ‖b − a‖ / ‖a‖ (or ‖b − a‖ when a is all zeros), and ‖a‖.
    Changed {
        name: String,
        relative: f64,
        norm_a: f64,
    },
    ShapeMismatch {
        name: String,
        a: String,
        b: String,
    },
    /// Quantised types this reader cannot decode.
    NotComparable {
        name: String,
        why: String,
    },
    Added(String),
    Removed(String),
}

/// Compares every tensor by name; changed tensors come first, largest change first.
pub fn diff(a: &Checkpoint, b: &Checkpoint) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    for ta in &a.tensors {
        match b.tensor(&ta.name) {
            None => out.push(Change::Removed(ta.name.clone())),
            Some(tb) if ta.shape != tb.shape => out.push(Change::ShapeMismatch {
                name: ta.name.clone(),
                a: ta.shape_text(),
                b: tb.shape_text(),
            }),
            Some(tb) => out.push(compare(ta, tb)?),
        }
    }
    for tb in &b.tensors {
        if a.tensor(&tb.name).is_none() {
            out.push(Change::Added(tb.name.clone()));
        }
    }
    let rank = |c: &Change| match c {
        Change::Changed { relative, .. } => (0, -relative),
        Change::ShapeMismatch { .. } => (1, 0.0),
        Change::NotComparable { .. } => (2, 0.0),
        Change::Added(_) => (3, 0.0),
        Change::Removed(_) => (4, 0.0),
    };
    out.sort_by(|x, y| {
        let (rx, vx) = rank(x);
        let (ry, vy) = rank(y);
        rx.cmp(&ry).then(vx.total_cmp(&vy))
    });
    Ok(out)
}

fn compare(ta: &TensorInfo, tb: &TensorInfo) -> Result<Change> {
    let (Some(va), Some(vb)) = (values(ta)?, values(tb)?) else {
        return Ok(Change::NotComparable {
            name: ta.name.clone(),
            why: format!(
                "{} / {} cannot be decoded",
                ta.dtype.name(),
                tb.dtype.name()
            ),
        });
    };
    let (mut d2, mut a2) = (0f64, 0f64);
    for (x, y) in va.iter().zip(&vb) {
        d2 += (y - x) * (y - x);
        a2 += x * x;
    }
    let norm_a = a2.sqrt();
    let relative = if norm_a > 0.0 {
        d2.sqrt() / norm_a
    } else {
        d2.sqrt()
    };
    Ok(Change::Changed {
        name: ta.name.clone(),
        relative,
        norm_a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::open;
    use crate::dtype::DType;
    use crate::safetensors::write;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn relative_change_added_removed_and_reshaped() {
        let dir = tempfile::tempdir().unwrap();
        let pa = dir.path().join("a.safetensors");
        let pb = dir.path().join("b.safetensors");
        write(
            &pa,
            &[
                ("w", DType::F32, &[2], &f32s(&[3.0, 4.0])),
                ("same", DType::F32, &[1], &f32s(&[1.0])),
                ("gone", DType::F32, &[1], &f32s(&[1.0])),
                ("r", DType::F32, &[2], &f32s(&[1.0, 1.0])),
            ],
        )
        .unwrap();
        write(
            &pb,
            &[
                ("w", DType::F32, &[2], &f32s(&[3.0, 5.0])),
                ("same", DType::F32, &[1], &f32s(&[1.0])),
                ("new", DType::F32, &[1], &f32s(&[1.0])),
                ("r", DType::F32, &[1, 2], &f32s(&[1.0, 1.0])),
            ],
        )
        .unwrap();
        let d = diff(&open(&pa).unwrap(), &open(&pb).unwrap()).unwrap();
        assert_eq!(
            d[0],
            Change::Changed {
                name: "w".into(),
                relative: 0.2,
                norm_a: 5.0
            }
        );
        assert_eq!(
            d[1],
            Change::Changed {
                name: "same".into(),
                relative: 0.0,
                norm_a: 1.0
            }
        );
        assert_eq!(
            d[2],
            Change::ShapeMismatch {
                name: "r".into(),
                a: "[2]".into(),
                b: "[1, 2]".into()
            }
        );
        assert_eq!(d[3], Change::Added("new".into()));
        assert_eq!(d[4], Change::Removed("gone".into()));
    }
}
