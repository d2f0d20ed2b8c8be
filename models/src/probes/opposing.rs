//! Opposing signals ("Outliers with Opposing Signals Have an Outsized Effect on Neural Network
//! Optimization"): the per-example loss change Δℓ on a fixed probe set between two probes,
//! the examples with the largest rises and falls, and the losses of those groups.

use serde::{Deserialize, Serialize};

/// Per-example cross-entropy of each row of `logits` against its label (f64, max-shifted).
pub fn losses(logits: &[f32], classes: usize, labels: &[u32]) -> Vec<f64> {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &y)| super::el2n::log_sum_exp(row) - row[y as usize] as f64)
        .collect()
}

/// One probe: the probe set's losses and the groups picked from the change since the last one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub step: u64,
    /// Dataset rows of the probe set (the same at every probe of a run).
    pub rows: Vec<usize>,
    pub loss: Vec<f32>,
    /// Positions in `rows` of the largest rises and of the largest falls since the last probe
    /// (largest first); empty at the first probe.
    pub rise: Vec<usize>,
    pub fall: Vec<usize>,
}

/// The positions of the `top` largest values of `delta` (ties by position).
fn largest(delta: &[f64], top: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..delta.len()).filter(|&i| delta[i].is_finite()).collect();
    idx.sort_by(|&a, &b| delta[b].total_cmp(&delta[a]).then(a.cmp(&b)));
    idx.truncate(top);
    idx
}

impl Probe {
    /// The probe at `step` with losses `loss`, its groups chosen against the `previous` probe's
    /// losses: the `top` largest Δℓ > 0 and the `top` largest falls.
    pub fn new(
        step: u64,
        rows: Vec<usize>,
        loss: Vec<f64>,
        previous: Option<&[f32]>,
        top: usize,
    ) -> Probe {
        let (rise, fall) = match previous {
            Some(prev) if prev.len() == loss.len() => {
                let delta: Vec<f64> = loss.iter().zip(prev).map(|(a, &b)| a - b as f64).collect();
                let neg: Vec<f64> = delta.iter().map(|d| -d).collect();
                let rise = largest(&delta, top)
                    .into_iter()
                    .filter(|&i| delta[i] > 0.0)
                    .collect();
                let fall = largest(&neg, top)
                    .into_iter()
                    .filter(|&i| delta[i] < 0.0)
                    .collect();
                (rise, fall)
            }
            _ => (Vec::new(), Vec::new()),
        };
        Probe {
            step,
            rows,
            loss: loss.iter().map(|&l| l as f32).collect(),
            rise,
            fall,
        }
    }

    /// Mean loss of the positions `group` (NaN when empty).
    pub fn mean(&self, group: &[usize]) -> f64 {
        group.iter().map(|&i| self.loss[i] as f64).sum::<f64>() / group.len() as f64
    }

    /// Mean loss of the whole probe set, of its rise and fall groups, and of the rest.
    pub fn summary(&self) -> [(&'static str, f64); 4] {
        let all: Vec<usize> = (0..self.loss.len()).collect();
        let rest: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !self.rise.contains(i) && !self.fall.contains(i))
            .collect();
        [
            ("opposing/loss", self.mean(&all)),
            ("opposing/rise", self.mean(&self.rise)),
            ("opposing/fall", self.mean(&self.fall)),
            ("opposing/rest", self.mean(&rest)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_the_largest_rises_and_falls_since_the_last_probe() {
        let l = losses(&[0.0, 0.0, 2.0, 0.0], 2, &[0, 0]);
        assert!((l[0] - 2f64.ln()).abs() < 1e-12);
        assert!((l[1] - (1.0 + 2f64.exp()).ln() + 2.0).abs() < 1e-6);
        let first = Probe::new(10, vec![5, 6, 7, 8], vec![1.0, 1.0, 1.0, 1.0], None, 2);
        assert!(first.rise.is_empty() && first.fall.is_empty());
        let p = Probe::new(
            20,
            vec![5, 6, 7, 8],
            vec![3.0, 0.5, 1.0, 0.2],
            Some(&first.loss),
            2,
        );
        assert_eq!(p.rise, vec![0]);
        assert_eq!(p.fall, vec![3, 1]);
        let s = p.summary();
        assert_eq!(s[1].1, 3.0);
        assert!((s[2].1 - 0.35).abs() < 1e-6);
        assert_eq!(s[3].1, 1.0);
    }
}
