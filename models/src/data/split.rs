//! Seeded train/validation splits and the batch order.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Example indices of the two splits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

impl Split {
    /// A shuffled split of `n` examples with `val_fraction` of them (at least one when the
    /// fraction is positive and `n > 1`) held out.
    pub fn new(n: usize, val_fraction: f64, seed: u64) -> Split {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT));
        let mut n_val = (n as f64 * val_fraction).round() as usize;
        if val_fraction > 0.0 && n > 1 {
            n_val = n_val.clamp(1, n - 1);
        }
        let val = idx.split_off(n - n_val);
        Split { train: idx, val }
    }
}

/// Keeps the split's permutation independent of the batch order drawn from the same seed.
const SPLIT_SALT: u64 = 0x5EED_5B11_7000_0001;

/// The batch order over the training split: each epoch is a fresh permutation drawn from
/// (seed, epoch), and the last partial batch of an epoch is dropped so every step sees
/// `batch_size` examples.
#[derive(Clone, Debug)]
pub struct Batches {
    train: Vec<usize>,
    batch_size: usize,
    seed: u64,
}

impl Batches {
    pub fn new(train: Vec<usize>, batch_size: usize, seed: u64) -> Batches {
        let batch_size = batch_size.clamp(1, train.len().max(1));
        Batches {
            train,
            batch_size,
            seed,
        }
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn per_epoch(&self) -> usize {
        (self.train.len() / self.batch_size).max(1)
    }

    /// The example indices of batch `step` (0-based).
    pub fn batch(&self, step: u64) -> Vec<usize> {
        let per = self.per_epoch() as u64;
        let (epoch, k) = (step / per, (step % per) as usize);
        let mut order = self.train.clone();
        let mix = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch;
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix));
        order[k * self.batch_size..(k + 1) * self.batch_size].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_seeded_disjoint_and_complete() {
        let a = Split::new(100, 0.2, 7);
        assert_eq!(a, Split::new(100, 0.2, 7));
        assert_ne!(a, Split::new(100, 0.2, 8));
        assert_eq!(a.val.len(), 20);
        let mut all: Vec<_> = a.train.iter().chain(&a.val).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn batches_are_a_function_of_seed_and_step() {
        let b = Batches::new((0..10).collect(), 4, 1);
        assert_eq!(b.per_epoch(), 2);
        assert_eq!(b.batch(3), Batches::new((0..10).collect(), 4, 1).batch(3));
        let epoch: Vec<usize> = [b.batch(0), b.batch(1)].concat();
        let mut sorted = epoch.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 8, "no example twice within an epoch");
        assert_ne!(b.batch(0), b.batch(2), "epochs are reshuffled");
    }
}
