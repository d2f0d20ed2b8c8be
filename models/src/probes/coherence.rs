//! Gradient coherence and the gradient noise scale from the k micro-batch gradients of one
//! step ("On the Generalization Mystery in Deep Learning"; McCandlish et al.'s simple noise
//! scale). With G_j the mean gradient of micro-batch j (b examples each), Q = Σ‖G_j‖² and
//! S = ‖Σ G_j‖², unbiased estimates of the true gradient's square norm and of the trace of
//! the per-example gradient covariance are
//!   ‖G‖² ≈ (S − Q)/(k(k−1)),   tr Σ ≈ b(kQ − S)/(k(k−1))
//! (McCandlish's two-batch-size formulas with B = kb). Then B_noise = tr Σ/‖G‖², the
//! per-example coherence α = E[g·g']/E[g·g] = 1/(1 + B_noise), and the m-coherence
//! ‖Σ g_i‖²/Σ‖g_i‖² of m examples is, in expectation, 1 + (m − 1)α — exactly the sampled
//! value when the micro-batches are single examples (b = 1, k = m).

/// The two sums of one step for one tensor (or all of them): Q = Σ_j‖G_j‖², S = ‖Σ_j G_j‖².
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sums {
    pub q: f64,
    pub s: f64,
}

/// ‖G‖² and tr Σ from one step's sums of `k` micro-batches of `b` examples.
pub fn moments(sums: Sums, k: usize, b: usize) -> (f64, f64) {
    let kf = k as f64;
    let d = kf * (kf - 1.0);
    ((sums.s - sums.q) / d, b as f64 * (kf * sums.q - sums.s) / d)
}

/// Coherence read off the two moments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coherence {
    pub g2: f64,
    pub trace: f64,
    /// tr Σ/‖G‖²: the batch size beyond which larger batches help little.
    pub b_noise: f64,
    /// 1/(1 + B_noise).
    pub alpha: f64,
}

impl Coherence {
    pub fn from_moments(g2: f64, trace: f64) -> Coherence {
        let b_noise = trace / g2;
        Coherence {
            g2,
            trace,
            b_noise,
            alpha: g2 / (g2 + trace),
        }
    }

    /// The expected m-coherence of `m` examples, 1 + (m − 1)α, in [0, m] for α in [−1/(m−1), 1].
    pub fn m_coherence(&self, m: usize) -> f64 {
        1.0 + (m as f64 - 1.0) * self.alpha
    }
}

/// Debiased exponential moving averages of ‖G‖² and tr Σ (each noisy step's estimate can be
/// negative; their ratio only means something averaged), globally and per tensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Smoother {
    beta: f64,
    steps: u32,
    g2: Vec<f64>,
    trace: Vec<f64>,
}

impl Smoother {
    /// `parts` EMAs (the total first, then one per tensor), each with weight `beta`.
    pub fn new(parts: usize, beta: f64) -> Smoother {
        Smoother {
            beta,
            steps: 0,
            g2: vec![0.0; parts],
            trace: vec![0.0; parts],
        }
    }

    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// How many averages it keeps (the total and one per tensor).
    pub fn parts(&self) -> usize {
        self.g2.len()
    }

    /// Adds one step's moments (same order as `new`) and returns the smoothed coherences.
    pub fn push(&mut self, moments: &[(f64, f64)]) -> Vec<Coherence> {
        self.steps += 1;
        let debias = 1.0 - self.beta.powi(self.steps as i32);
        moments
            .iter()
            .enumerate()
            .map(|(i, &(g2, tr))| {
                self.g2[i] = self.beta * self.g2[i] + (1.0 - self.beta) * g2;
                self.trace[i] = self.beta * self.trace[i] + (1.0 - self.beta) * tr;
                Coherence::from_moments(self.g2[i] / debias, self.trace[i] / debias)
            })
            .collect()
    }
}

/// The hint the noise scale gives (McCandlish et al.; Granziol et al. for the learning-rate
/// rule): batch sizes up to about B_noise still buy speed, and moving the batch from `batch`
/// to B_noise would scale the learning rate linearly for SGD and by the square root for Adam.
/// `None` while B_noise is not a positive finite number.
pub fn hint(c: &Coherence, batch: usize, lr: f64, adam: bool) -> Option<(f64, f64)> {
    if !(c.b_noise.is_finite() && c.b_noise > 0.0) {
        return None;
    }
    let ratio = c.b_noise / batch as f64;
    Some((c.b_noise, lr * if adam { ratio.sqrt() } else { ratio }))
}

/// One step's micro-batch gradients, gathered one part at a time: Σ‖G_j‖² per tensor and
/// the running Σ G_j (so at most one extra set of gradients is held).
pub struct Parts {
    q: Vec<f64>,
    sum: Option<Vec<candle_core::Tensor>>,
    k: usize,
}

impl Parts {
    pub fn new(tensors: usize) -> Parts {
        Parts {
            q: vec![0.0; tensors],
            sum: None,
            k: 0,
        }
    }

    pub fn add(&mut self, grads: Vec<candle_core::Tensor>) -> candle_core::Result<()> {
        for (q, g) in self.q.iter_mut().zip(&grads) {
            *q += crate::train::tensor_sq(g)?;
        }
        self.sum = Some(match self.sum.take() {
            None => grads,
            Some(acc) => acc
                .iter()
                .zip(&grads)
                .map(|(a, g)| a + g)
                .collect::<candle_core::Result<_>>()?,
        });
        self.k += 1;
        Ok(())
    }

    /// Σ G_j, and the moments (‖G‖², tr Σ) — of all tensors together first, then of each —
    /// for parts of `b` examples each, and the unsmoothed k-coherence S/Q.
    pub fn finish(self, b: usize) -> candle_core::Result<Gathered> {
        let sum = self.sum.expect("at least one part");
        let s: Vec<f64> = sum
            .iter()
            .map(crate::train::tensor_sq)
            .collect::<candle_core::Result<_>>()?;
        let total = Sums {
            q: self.q.iter().sum(),
            s: s.iter().sum(),
        };
        let k = self.k;
        let moments = std::iter::once(total)
            .chain(self.q.iter().zip(&s).map(|(&q, &s)| Sums { q, s }))
            .map(|sums| moments(sums, k, b))
            .collect();
        Ok(Gathered {
            sum,
            moments,
            micro: total.s / total.q.max(1e-300),
        })
    }
}

/// What [`Parts::finish`] gives.
pub struct Gathered {
    /// Σ G_j, per tensor.
    pub sum: Vec<candle_core::Tensor>,
    /// (‖G‖², tr Σ) of all tensors together, then of each.
    pub moments: Vec<(f64, f64)>,
    /// The unsmoothed k-coherence S/Q of the parts.
    pub micro: f64,
}

/// acc + w·g (acc = w·g at first): a weighted sum of gradient sets.
pub fn weigh(
    acc: Option<Vec<candle_core::Tensor>>,
    g: &[candle_core::Tensor],
    w: f64,
) -> candle_core::Result<Vec<candle_core::Tensor>> {
    match acc {
        None => g.iter().map(|gi| gi * w).collect(),
        Some(a) => a.iter().zip(g).map(|(a, gi)| a + (gi * w)?).collect(),
    }
}

/// What a coherence probe records from the smoothed coherences (all tensors first, then each
/// of `names`): m-coherence of the step's `m` examples, α, B_noise, the raw k-coherence, the
/// hint for the peak learning rate `lr`, and B_noise per tensor.
pub fn records(
    c: &[Coherence],
    names: &[String],
    m: usize,
    micro: f64,
    lr: f64,
    adam: bool,
) -> Vec<(String, f64)> {
    let total = c[0];
    let mut out = vec![
        ("coherence/m".to_string(), total.m_coherence(m)),
        ("coherence/alpha".into(), total.alpha),
        ("coherence/b_noise".into(), total.b_noise),
        ("coherence/micro".into(), micro),
    ];
    if let Some((batch, lr)) = hint(&total, m, lr, adam) {
        out.push(("coherence/hint_batch".into(), batch));
        out.push(("coherence/hint_lr".into(), lr));
    }
    for (name, ci) in names.iter().zip(&c[1..]) {
        out.push((format!("coherence/b_noise/{name}"), ci.b_noise));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(v: &[f64]) -> f64 {
        v.iter().map(|x| x * x).sum()
    }

    #[test]
    fn with_single_examples_the_estimate_is_the_sampled_m_coherence() {
        let g = [
            vec![1.0, 2.0, 0.5],
            vec![0.8, 1.5, -0.2],
            vec![-0.3, 2.2, 0.1],
            vec![1.1, 0.4, 0.9],
        ];
        let total: Vec<f64> = (0..3).map(|i| g.iter().map(|v| v[i]).sum()).collect();
        let sums = Sums {
            q: g.iter().map(|v| sq(v)).sum(),
            s: sq(&total),
        };
        let (g2, tr) = moments(sums, 4, 1);
        let c = Coherence::from_moments(g2, tr);
        let sampled = sums.s / sums.q;
        assert!((c.m_coherence(4) - sampled).abs() < 1e-12);
        // Identical gradients: coherence m, no noise.
        let same = Sums { q: 4.0, s: 16.0 };
        let (g2, tr) = moments(same, 4, 1);
        let c = Coherence::from_moments(g2, tr);
        assert_eq!(c.m_coherence(4), 4.0);
        assert_eq!(c.b_noise, 0.0);
    }

    #[test]
    fn the_smoothed_ratio_is_the_ratio_of_the_averages() {
        let mut s = Smoother::new(1, 0.5);
        s.push(&[(1.0, 3.0)]);
        let c = s.push(&[(3.0, 1.0)])[0];
        // Debiased EMAs of (1, 3) then (3, 1) with β = ½: (1·¼ + 3·½)/¾ etc.
        let g2 = (0.25 + 1.5) / 0.75;
        let tr = (0.75 + 0.5) / 0.75;
        assert!((c.b_noise - tr / g2).abs() < 1e-12);
        let (b, lr) = hint(&c, 10, 0.1, true).unwrap();
        assert!((lr - 0.1 * (b / 10.0).sqrt()).abs() < 1e-12);
        assert!(hint(&Coherence::from_moments(-1.0, 1.0), 10, 0.1, false).is_none());
    }
}
