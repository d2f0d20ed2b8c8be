//! D³S down-sampling ("Learning More with Less: A Dynamic Dual-Level Down-Sampling
//! Framework for Efficient Policy Optimization"): which rollouts and which of their tokens a
//! GRPO step learns from, and the schedule of both kept fractions.
//!
//! The paper's code is not public; what follows its text and what is our reading of it is
//! said at each function and in the README.

use serde::{Deserialize, Serialize};

/// The population variance (what "Var(A)" of a subset means here).
pub fn variance(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
}

/// The `k` indices of `x` whose values have the largest variance, in ascending index order.
///
/// The best subset is always some of the lowest values together with the rest from the
/// highest (PODS, "Not All Rollouts are Useful"), so after one sort every split i (i lowest,
/// k − i highest) is scored in O(1) from prefix sums: O(n log n) in all. Ties between splits
/// go to the smaller i, ties between equal values to the lower index (the sort is stable).
pub fn max_variance_subset(x: &[f64], k: usize) -> Vec<usize> {
    let n = x.len();
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let (mut s1, mut s2) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    for (j, &i) in order.iter().enumerate() {
        s1[j + 1] = s1[j] + x[i];
        s2[j + 1] = s2[j] + x[i] * x[i];
    }
    let kf = k as f64;
    let mut best: Option<(f64, usize)> = None;
    for low in 0..=k {
        let high = k - low;
        let sum = s1[low] + (s1[n] - s1[n - high]);
        let sq = s2[low] + (s2[n] - s2[n - high]);
        let var = sq / kf - (sum / kf) * (sum / kf);
        // A relative tolerance keeps rounding from choosing between equal splits.
        if best.is_none_or(|(b, _)| var > b + 1e-12 * b.abs().max(1e-300)) {
            best = Some((var, low));
        }
    }
    let low = best.map_or(0, |b| b.1);
    let mut keep: Vec<usize> = order[..low]
        .iter()
        .chain(&order[n - (k - low)..])
        .copied()
        .collect();
    keep.sort_unstable();
    keep
}

/// Intra-group selection (D³S-I): within each group of `g` consecutive rollouts, the `k`
/// whose advantages have the largest variance — the most positive and most negative ones.
pub fn intra_group(adv: &[f64], g: usize, k: usize) -> Vec<usize> {
    adv.chunks(g)
        .enumerate()
        .flat_map(|(q, group)| {
            max_variance_subset(group, k)
                .into_iter()
                .map(move |i| q * g + i)
        })
        .collect()
}

/// The `q`-quantile of `v` with linear interpolation between order statistics, as
/// `torch.quantile` computes it (what TRL's entropy mask uses). `None` when `v` is empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(s[lo] + (s[hi] - s[lo]) * (pos - lo as f64))
}

/// Token-level selection: the tokens whose score |A_i|·H_{i,t} reaches the batch-wide
/// (1 − `keep`)-quantile of all scores. Ranked over the whole batch, not per sequence (a
/// per-sequence top-k would make |A_i| irrelevant): our reading of the paper's "prioritise
/// tokens with high |A|·H". Ties at the threshold are all kept, as TRL's `>=` keeps them.
pub fn token_mask(scores: &[Vec<f64>], keep: f64) -> Vec<Vec<bool>> {
    let all: Vec<f64> = scores.iter().flatten().copied().collect();
    let Some(threshold) = quantile(&all, 1.0 - keep) else {
        return scores.iter().map(|s| vec![true; s.len()]).collect();
    };
    scores
        .iter()
        .map(|s| s.iter().map(|&v| v >= threshold).collect())
        .collect()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ramp {
    #[default]
    Linear,
    Cosine,
}

/// A kept fraction that goes from `init` to `last` over the first `over` of training (a
/// fraction in (0, 1]), then stays. The paper's schedule is linear in training progress p,
/// `(1 − p)·init + p·final` (over = 1); `over` and the cosine ramp are our additions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub init: f64,
    pub last: f64,
    pub over: f64,
    pub ramp: Ramp,
}

impl Schedule {
    pub fn constant(v: f64) -> Schedule {
        Schedule {
            init: v,
            last: v,
            over: 1.0,
            ramp: Ramp::Linear,
        }
    }

    /// The fraction after `step` of `total` steps.
    pub fn at(&self, step: u64, total: u64) -> f64 {
        let p = step as f64 / total.max(1) as f64;
        let u = (p / self.over.max(1e-12)).min(1.0);
        let w = match self.ramp {
            Ramp::Linear => u,
            Ramp::Cosine => (1.0 - (std::f64::consts::PI * u).cos()) / 2.0,
        };
        self.init + (self.last - self.init) * w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every k-subset's variance, the largest.
    fn brute(x: &[f64], k: usize) -> f64 {
        let n = x.len();
        let mut best = f64::NEG_INFINITY;
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != k {
                continue;
            }
            let sub: Vec<f64> = (0..n)
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| x[i])
                .collect();
            best = best.max(variance(&sub));
        }
        best
    }

    #[test]
    fn the_max_variance_subset_matches_brute_force_on_random_inputs() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for trial in 0..400 {
            let n = rng.random_range(1..=10);
            let k = rng.random_range(1..=n);
            // Some trials draw from few values, so ties are common.
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    if trial % 3 == 0 {
                        rng.random_range(0..3) as f64
                    } else {
                        rng.random_range(-2.0..2.0)
                    }
                })
                .collect();
            let keep = max_variance_subset(&x, k);
            assert_eq!(keep.len(), k);
            assert!(keep.windows(2).all(|w| w[0] < w[1]), "{keep:?}");
            let got = variance(&keep.iter().map(|&i| x[i]).collect::<Vec<_>>());
            let want = brute(&x, k);
            assert!((got - want).abs() < 1e-9, "x {x:?} k {k}: {got} vs {want}");
        }
    }

    #[test]
    fn intra_group_keeps_each_groups_extremes() {
        // Two groups of four; keeping two of each keeps its lowest and highest.
        let adv = [0.1, -1.0, 0.9, 0.0, 2.0, 1.0, -3.0, 0.5];
        assert_eq!(intra_group(&adv, 4, 2), vec![1, 2, 4, 6]);
        // All of a group when k ≥ G.
        assert_eq!(intra_group(&adv[..4], 4, 9), vec![0, 1, 2, 3]);
    }

    #[test]
    fn token_selection_keeps_the_top_fraction_batch_wide() {
        // Scores 0..9 over two sequences: keeping 30% keeps the scores ≥ the 0.7-quantile
        // (6.3), i.e. 7, 8 and 9.
        let scores = vec![vec![0.0, 9.0, 2.0, 7.0], vec![4.0, 5.0, 6.0, 8.0, 1.0, 3.0]];
        let m = token_mask(&scores, 0.3);
        assert_eq!(m[0], vec![false, true, false, true]);
        assert_eq!(m[1], vec![false, false, false, true, false, false]);
        // Keeping everything keeps zero scores too.
        assert!(token_mask(&scores, 1.0).iter().flatten().all(|&k| k));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
    }

    #[test]
    fn both_schedules_ramp_from_init_to_final_over_their_part_of_training() {
        let lin = Schedule {
            init: 0.2,
            last: 1.0,
            over: 0.5,
            ramp: Ramp::Linear,
        };
        assert_eq!(lin.at(0, 100), 0.2);
        assert!((lin.at(25, 100) - 0.6).abs() < 1e-12);
        assert_eq!(lin.at(50, 100), 1.0);
        assert_eq!(lin.at(90, 100), 1.0);
        let cos = Schedule {
            ramp: Ramp::Cosine,
            ..lin
        };
        assert_eq!(cos.at(0, 100), 0.2);
        assert!(
            (cos.at(25, 100) - 0.6).abs() < 1e-12,
            "half way is the middle"
        );
        assert!(
            (cos.at(10, 100) - (0.2 + 0.8 * (1.0 - (0.2 * std::f64::consts::PI).cos()) / 2.0))
                .abs()
                < 1e-9
        );
        assert!(cos.at(10, 100) < lin.at(10, 100), "cosine starts slower");
        assert_eq!(cos.at(60, 100), 1.0);
    }
}
