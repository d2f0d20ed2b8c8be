//! Datasets: built-in synthetic sets, small real sets shipped by smartcore, and CSV files.
//!
//! Everything is seeded: the same seed gives the same examples, split and batch order. The
//! batch order is a pure function of (seed, step), so a resumed run needs no RNG state to
//! continue exactly where it stopped.

mod builtin;
mod source;
mod split;
mod synthetic;

pub use builtin::{BUILTINS, Builtin, load_builtin, validate_builtin};
pub use source::load_source;
pub use split::{Batches, Split};

/// What is predicted.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// One class index per example.
    Classes {
        labels: Vec<u32>,
        names: Vec<String>,
    },
    /// One real value per example.
    Values(Vec<f32>),
}

impl Targets {
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of classes, or `None` for regression.
    pub fn classes(&self) -> Option<usize> {
        match self {
            Targets::Classes { names, .. } => Some(names.len()),
            Targets::Values(_) => None,
        }
    }
}

/// A dataset in memory: `inputs` is row-major, `len × input_shape.product()`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub inputs: Vec<f32>,
    /// The shape of one example, e.g. `[64]` or `[1, 8, 8]`.
    pub input_shape: Vec<usize>,
    pub targets: Targets,
    pub feature_names: Vec<String>,
}

impl Dataset {
    /// Permutes the class labels among the examples (seeded): the random-label control of
    /// memorisation experiments, with the class histogram kept.
    pub fn shuffle_labels(&mut self, seed: u64) -> Result<(), String> {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let Targets::Classes { labels, .. } = &mut self.targets else {
            return Err(format!("{} has values, not classes, to shuffle", self.name));
        };
        labels.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            seed ^ 0x5EED_1ABE,
        ));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn features(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Checks the invariants every loader must keep.
    pub fn check(&self) -> Result<(), String> {
        if self.is_empty() {
            return Err(format!("dataset {} has no examples", self.name));
        }
        if self.inputs.len() != self.len() * self.features() {
            return Err(format!(
                "dataset {}: {} input values for {} examples of {} features",
                self.name,
                self.inputs.len(),
                self.len(),
                self.features()
            ));
        }
        if let Targets::Classes { labels, names } = &self.targets
            && let Some(bad) = labels.iter().find(|&&l| l as usize >= names.len())
        {
            return Err(format!(
                "dataset {}: label {bad} but only {} classes",
                self.name,
                names.len()
            ));
        }
        Ok(())
    }

    /// Rescales each feature to zero mean and unit variance using statistics of `rows` (the
    /// training split), so validation data never leaks into the scaling. Constant features
    /// are left centred.
    pub fn standardize(&mut self, rows: &[usize]) {
        let f = self.features();
        let stats = self.standardization(rows);
        for (k, x) in self.inputs.iter_mut().enumerate() {
            let (mean, std) = stats[k % f];
            *x = ((*x as f64 - mean) / std) as f32;
        }
    }

    /// (mean, std) per feature over `rows`, as [`Dataset::standardize`] uses them (std 1 for
    /// a constant feature), so new inputs can be scaled the same way.
    pub fn standardization(&self, rows: &[usize]) -> Vec<(f64, f64)> {
        let f = self.features();
        let n = rows.len().max(1) as f64;
        (0..f)
            .map(|j| {
                let mean = rows
                    .iter()
                    .map(|&r| self.inputs[r * f + j] as f64)
                    .sum::<f64>()
                    / n;
                let var = rows
                    .iter()
                    .map(|&r| (self.inputs[r * f + j] as f64 - mean).powi(2))
                    .sum::<f64>()
                    / n;
                (mean, if var > 1e-12 { var.sqrt() } else { 1.0 })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizing_uses_only_the_given_rows() {
        let mut d = Dataset {
            name: "t".into(),
            inputs: vec![0.0, 2.0, 100.0],
            input_shape: vec![1],
            targets: Targets::Values(vec![0.0; 3]),
            feature_names: vec!["x".into()],
        };
        d.standardize(&[0, 1]);
        assert_eq!(&d.inputs[..2], &[-1.0, 1.0]);
        assert_eq!(d.inputs[2], 99.0);
    }
}
