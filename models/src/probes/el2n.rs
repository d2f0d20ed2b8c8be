//! Data-diet scores ("Deep Learning on a Data Diet"): EL2N(x, y) = ‖softmax(f(x)) − onehot(y)‖₂,
//! from the logits each training step computes anyway, averaged per example over the visits
//! that fall in a window of steps; and the subsets an experiment can train on.

use serde::{Deserialize, Serialize};

/// log Σ exp of a row of logits, max-shifted, in f64.
pub(crate) fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    row.iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max
}

/// EL2N of each row of `logits` (`classes` per row) against its label.
pub fn el2n(logits: &[f32], classes: usize, labels: &[u32]) -> Vec<f64> {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &y)| {
            let lse = log_sum_exp(row);
            row.iter()
                .enumerate()
                .map(|(c, &v)| {
                    let p = (v as f64 - lse).exp();
                    (p - if c as u32 == y { 1.0 } else { 0.0 }).powi(2)
                })
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// Per dataset row, the sum and count of its scores inside the window: what `el2n.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Steps (1-based, inclusive) whose batches count: early training is the paper's choice.
    pub from_step: u64,
    pub to_step: Option<u64>,
    pub sum: Vec<f64>,
    pub count: Vec<u32>,
}

impl Scores {
    /// Empty scores for a dataset of `rows` rows.
    pub fn new(rows: usize, from_step: u64, to_step: Option<u64>) -> Scores {
        Scores {
            from_step,
            to_step,
            sum: vec![0.0; rows],
            count: vec![0; rows],
        }
    }

    pub fn in_window(&self, step: u64) -> bool {
        step >= self.from_step && self.to_step.is_none_or(|t| step <= t)
    }

    /// Adds the scores of the rows of step `step`'s batch (if the step is in the window).
    pub fn add(&mut self, step: u64, rows: &[usize], scores: &[f64]) {
        if !self.in_window(step) {
            return;
        }
        for (&r, &s) in rows.iter().zip(scores) {
            if s.is_finite() {
                self.sum[r] += s;
                self.count[r] += 1;
            }
        }
    }

    /// Each row's mean score; `None` for rows never seen in the window (validation rows).
    pub fn means(&self) -> Vec<Option<f64>> {
        self.sum
            .iter()
            .zip(&self.count)
            .map(|(&s, &c)| (c > 0).then(|| s / c as f64))
            .collect()
    }
}

/// The mean over several runs' scores of each row (the paper averages over ten), skipping
/// runs that never saw the row. Errs when the runs score different numbers of rows.
pub fn average(runs: &[Scores]) -> Result<Vec<Option<f64>>, String> {
    let Some(first) = runs.first() else {
        return Err("no scores to average".into());
    };
    if let Some(r) = runs.iter().find(|r| r.sum.len() != first.sum.len()) {
        return Err(format!(
            "runs scored different datasets ({} rows against {})",
            r.sum.len(),
            first.sum.len()
        ));
    }
    let means: Vec<Vec<Option<f64>>> = runs.iter().map(Scores::means).collect();
    Ok((0..first.sum.len())
        .map(|i| {
            let seen: Vec<f64> = means.iter().filter_map(|m| m[i]).collect();
            (!seen.is_empty()).then(|| seen.iter().sum::<f64>() / seen.len() as f64)
        })
        .collect())
}

/// `data.subset`: which training rows a run keeps, and the scores it ranks them by.
#[derive(Clone, Debug, PartialEq)]
pub struct Subset {
    pub keep: Keep,
    /// Per dataset row (empty for a random subset).
    pub scores: Vec<Option<f64>>,
}

/// Which training rows a subset keeps.
#[derive(Clone, Debug, PartialEq)]
pub enum Keep {
    /// The highest-scoring `fraction` after skipping the top `offset` fraction (the hardest
    /// examples, likely label noise): the paper's `run_keep_max_scores` / `run_offset_subset`.
    Top { fraction: f64, offset: f64 },
    /// A seeded random subset of the same size: the baseline.
    Random { fraction: f64, seed: u64 },
}

/// The rows of `train` to keep, in `train`'s order. `scores[r]` is row r's score (for
/// `Top`; every training row must have one).
pub fn subset(train: &[usize], scores: &[Option<f64>], keep: &Keep) -> Result<Vec<usize>, String> {
    let count = |f: f64| ((train.len() as f64 * f).round() as usize).min(train.len());
    let mut kept: Vec<usize> = match keep {
        Keep::Top { fraction, offset } => {
            let mut scored = Vec::with_capacity(train.len());
            for &r in train {
                match scores.get(r).copied().flatten() {
                    Some(s) => scored.push((r, s)),
                    None => {
                        return Err(format!(
                            "training row {r} has no score (the scoring run never trained on it: \
                             was it split with the same seed and val_fraction?)"
                        ));
                    }
                }
            }
            // Hardest first; ties by row so the subset is the same on every machine.
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let skip = count(*offset);
            scored
                .into_iter()
                .skip(skip)
                .take(count(*fraction))
                .map(|(r, _)| r)
                .collect()
        }
        Keep::Random { fraction, seed } => {
            use rand::SeedableRng;
            use rand::seq::SliceRandom;
            let mut rows = train.to_vec();
            rows.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(*seed));
            rows.truncate(count(*fraction));
            rows
        }
    };
    if kept.is_empty() {
        return Err("the subset keeps no rows".into());
    }
    let pos: std::collections::HashMap<usize, usize> =
        train.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    kept.sort_by_key(|r| pos[r]);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn el2n_is_the_distance_of_the_softmax_from_the_label() {
        // Logits (0, ln 3): softmax (¼, ¾). Label 1: ‖(¼, −¼)‖ = √2/4; label 0: ‖(−¾, ¾)‖.
        let l = [0.0f32, 3f32.ln(), 0.0, 3f32.ln()];
        let s = el2n(&l, 2, &[1, 0]);
        assert!((s[0] - 2f64.sqrt() / 4.0).abs() < 1e-6);
        assert!((s[1] - 0.75 * 2f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn scores_average_inside_the_window_and_subsets_keep_the_requested_rows() {
        let mut s = Scores::new(5, 2, Some(3));
        s.add(1, &[0], &[9.0]);
        s.add(2, &[0, 1], &[1.0, 2.0]);
        s.add(3, &[0, 2], &[3.0, 4.0]);
        s.add(4, &[3], &[5.0]);
        assert_eq!(s.means(), vec![Some(2.0), Some(2.0), Some(4.0), None, None]);
        let other = Scores {
            sum: vec![4.0, 0.0, 0.0, 1.0, 0.0],
            count: vec![1, 0, 0, 1, 0],
            ..s.clone()
        };
        assert_eq!(
            average(&[s, other]).unwrap(),
            vec![Some(3.0), Some(2.0), Some(4.0), Some(1.0), None]
        );
        let scores = [Some(0.1), Some(0.9), Some(0.5), Some(0.7), None];
        let train = [3, 0, 1, 2];
        let top = Keep::Top {
            fraction: 0.5,
            offset: 0.0,
        };
        assert_eq!(subset(&train, &scores, &top).unwrap(), vec![3, 1]);
        let offset = Keep::Top {
            fraction: 0.5,
            offset: 0.25,
        };
        assert_eq!(subset(&train, &scores, &offset).unwrap(), vec![3, 2]);
        let random = Keep::Random {
            fraction: 0.5,
            seed: 7,
        };
        let r = subset(&train, &scores, &random).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r, subset(&train, &scores, &random).unwrap());
        let err = subset(&[4, 0], &scores, &top).unwrap_err();
        assert!(err.contains("row 4 has no score"), "{err}");
    }
}
