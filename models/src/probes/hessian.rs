//! Hessian probes without double backward: candle cannot differentiate a gradient (its
//! backprop has no second order), so Hessian–vector products are central finite differences of
//! gradients, Hv ≈ [∇L(θ+hu) − ∇L(θ−hu)]/2h·‖v‖ with u = v/‖v‖, taken on a fixed batch with
//! everything deterministic and the differences accumulated in f64. On top of that operator:
//! warm-started power iteration for λ_max, Hutchinson's trace, and Lanczos with full
//! reorthogonalisation for the spectral density (stochastic Lanczos quadrature, as PyHessian).

use super::linalg::{axpy, dot, norm, rademacher, scale, sym_eigen};
use candle_core::Result;

/// A symmetric linear operator on flat f64 vectors: the Hessian (or a transformed one).
pub trait Operator {
    fn dim(&self) -> usize;
    fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>>;
}

/// The finite-difference Hessian–vector product of a gradient function around `theta`.
/// `grad(θ)` must be deterministic (same batch, no dropout). The step is
/// h = `radius`·max(1, ‖θ‖): f32 gradients want a radius near 1e-3 (truncation O(h²) against
/// rounding O(ε/h)), see the notes.
pub struct FdHessian<F: FnMut(&[f64]) -> Result<Vec<f64>>> {
    theta: Vec<f64>,
    grad: F,
    h: f64,
    /// Gradient evaluations done (two per product).
    pub gradients: usize,
}

impl<F: FnMut(&[f64]) -> Result<Vec<f64>>> FdHessian<F> {
    pub fn new(theta: Vec<f64>, radius: f64, grad: F) -> Self {
        let h = radius * norm(&theta).max(1.0);
        FdHessian {
            theta,
            grad,
            h,
            gradients: 0,
        }
    }
}

impl<F: FnMut(&[f64]) -> Result<Vec<f64>>> Operator for FdHessian<F> {
    fn dim(&self) -> usize {
        self.theta.len()
    }

    fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
        let n = norm(v);
        if n == 0.0 {
            return Ok(vec![0.0; v.len()]);
        }
        let at = |sign: f64| -> Vec<f64> {
            self.theta
                .iter()
                .zip(v)
                .map(|(t, x)| t + sign * self.h * x / n)
                .collect()
        };
        let (plus, minus) = (at(1.0), at(-1.0));
        let gp = (self.grad)(&plus)?;
        let gm = (self.grad)(&minus)?;
        self.gradients += 2;
        let k = n / (2.0 * self.h);
        Ok(gp.iter().zip(&gm).map(|(a, b)| (a - b) * k).collect())
    }
}

/// The operator D^{-1/2} H D^{-1/2} for a positive diagonal D: with D = Adam's preconditioner
/// its top eigenvalue is the preconditioned sharpness λ_max(P⁻¹H) (the two are similar).
pub struct Preconditioned<'a> {
    pub inner: &'a mut dyn Operator,
    /// D^{-1/2}, per coordinate.
    pub inv_sqrt: Vec<f64>,
}

impl Operator for Preconditioned<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
        let u: Vec<f64> = v.iter().zip(&self.inv_sqrt).map(|(a, s)| a * s).collect();
        let hu = self.inner.apply(&u)?;
        Ok(hu.iter().zip(&self.inv_sqrt).map(|(a, s)| a * s).collect())
    }
}

/// What power iteration found.
#[derive(Clone, Debug)]
pub struct TopEigen {
    /// The Rayleigh quotient vᵀHv of the last iterate: the eigenvalue of largest magnitude.
    pub value: f64,
    /// The unit eigenvector estimate (the warm start of the next call).
    pub vector: Vec<f64>,
    pub iterations: usize,
    /// Whether the relative change of the estimate fell below the tolerance.
    pub converged: bool,
}

/// Power iteration v ← Hv/‖Hv‖ from `start` (or a seeded Rademacher vector), until the
/// Rayleigh quotient changes by less than `tol` relatively or `max_iters` products are spent.
pub fn power_iteration(
    op: &mut dyn Operator,
    start: Option<&[f64]>,
    max_iters: usize,
    tol: f64,
    seed: u64,
) -> Result<TopEigen> {
    let mut v = match start {
        Some(s) if s.len() == op.dim() && norm(s) > 0.0 => s.to_vec(),
        _ => rademacher(op.dim(), seed),
    };
    let n = norm(&v);
    scale(&mut v, 1.0 / n);
    let mut value = f64::NAN;
    for i in 1..=max_iters.max(1) {
        let hv = op.apply(&v)?;
        let next = dot(&v, &hv);
        let hn = norm(&hv);
        let done = value.is_finite() && (next - value).abs() <= tol * next.abs().max(1e-30);
        value = next;
        if hn == 0.0 || !hn.is_finite() {
            return Ok(TopEigen {
                value,
                vector: v,
                iterations: i,
                converged: hn == 0.0,
            });
        }
        v = hv;
        scale(&mut v, 1.0 / hn);
        if done {
            return Ok(TopEigen {
                value,
                vector: v,
                iterations: i,
                converged: true,
            });
        }
    }
    Ok(TopEigen {
        value,
        vector: v,
        iterations: max_iters.max(1),
        converged: false,
    })
}

/// Hutchinson's estimate of tr H: the mean of vᵀHv over `samples` Rademacher vectors; also
/// the standard error of that mean.
pub fn hutchinson(op: &mut dyn Operator, samples: usize, seed: u64) -> Result<(f64, f64)> {
    let mut values = Vec::with_capacity(samples);
    for k in 0..samples {
        let v = rademacher(op.dim(), seed.wrapping_add(k as u64 * 0x9E37));
        values.push(dot(&v, &op.apply(&v)?));
    }
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Ok((mean, (var / n).sqrt()))
}

/// The tridiagonal matrix of `steps` Lanczos steps from the unit vector along `start`, with
/// full reorthogonalisation (in f64, the basis stays orthogonal to rounding): diagonal α and
/// off-diagonal β. Stops early when the Krylov space is exhausted (β ≈ 0).
pub fn lanczos(op: &mut dyn Operator, start: &[f64], steps: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut q = start.to_vec();
    let n = norm(&q);
    scale(&mut q, 1.0 / n);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(steps);
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for _ in 0..steps.min(op.dim()) {
        let mut w = op.apply(&q)?;
        let a = dot(&q, &w);
        axpy(&mut w, -a, &q);
        if let (Some(prev), Some(&b)) = (basis.last(), beta.last()) {
            axpy(&mut w, -b, prev);
        }
        // Twice, as is customary: one pass of Gram–Schmidt leaves rounding that the next
        // Lanczos step amplifies.
        for _ in 0..2 {
            for b in basis.iter().chain(std::iter::once(&q)) {
                let c = dot(b, &w);
                axpy(&mut w, -c, b);
            }
        }
        alpha.push(a);
        let b = norm(&w);
        basis.push(std::mem::take(&mut q));
        if b <= 1e-10 * a.abs().max(1.0) || alpha.len() == steps.min(op.dim()) {
            break;
        }
        beta.push(b);
        scale(&mut w, 1.0 / b);
        q = w;
    }
    Ok((alpha, beta))
}

/// Eigenvalues (ascending) of the symmetric tridiagonal matrix (α, β) and the squared first
/// component of each eigenvector: the nodes and weights of the Gauss quadrature that SLQ uses.
pub fn tridiagonal_nodes(alpha: &[f64], beta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let m = alpha.len();
    let mut t = vec![0.0; m * m];
    for i in 0..m {
        t[i * m + i] = alpha[i];
        if i + 1 < m && i < beta.len() {
            t[i * m + i + 1] = beta[i];
            t[(i + 1) * m + i] = beta[i];
        }
    }
    let (values, vectors) = sym_eigen(&t, m);
    let weights = vectors.iter().map(|v| v[0].powi(2)).collect();
    (values, weights)
}

/// One stochastic-Lanczos-quadrature run per probe vector: Ritz values and their weights.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quadrature {
    pub nodes: Vec<f64>,
    pub weights: Vec<f64>,
}

/// Stochastic Lanczos quadrature: `vectors` Rademacher probes × `steps` Lanczos steps.
pub fn slq(
    op: &mut dyn Operator,
    steps: usize,
    vectors: usize,
    seed: u64,
) -> Result<Vec<Quadrature>> {
    (0..vectors.max(1))
        .map(|k| {
            let v = rademacher(op.dim(), seed.wrapping_add(k as u64));
            let (a, b) = lanczos(op, &v, steps)?;
            let (nodes, weights) = tridiagonal_nodes(&a, &b);
            Ok(Quadrature { nodes, weights })
        })
        .collect()
}

/// The spectral density on `grid`: each run's nodes smoothed by Gaussians of variance
/// σ² = 1e-5·max(1, λmax − λmin) (PyHessian's width), averaged over runs. The density
/// integrates to one over a grid that covers the nodes.
pub fn density(runs: &[Quadrature], grid: &[f64]) -> Vec<f64> {
    let (lo, hi) = node_range(runs);
    let var = 1e-5 * (hi - lo).max(1.0);
    let norm = 1.0 / (2.0 * std::f64::consts::PI * var).sqrt() / runs.len().max(1) as f64;
    grid.iter()
        .map(|&t| {
            runs.iter()
                .flat_map(|r| r.nodes.iter().zip(&r.weights))
                .map(|(&n, &w)| w * (-(t - n).powi(2) / (2.0 * var)).exp())
                .sum::<f64>()
                * norm
        })
        .collect()
}

/// The smallest and largest Ritz value over the runs.
pub fn node_range(runs: &[Quadrature]) -> (f64, f64) {
    let all = runs.iter().flat_map(|r| r.nodes.iter().copied());
    all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    })
}

/// tr H from the quadrature: dim · Σ τ_j θ_j, averaged over runs.
pub fn quadrature_trace(runs: &[Quadrature], dim: usize) -> f64 {
    let per: Vec<f64> = runs
        .iter()
        .map(|r| {
            r.nodes
                .iter()
                .zip(&r.weights)
                .map(|(n, w)| n * w)
                .sum::<f64>()
        })
        .collect();
    dim as f64 * per.iter().sum::<f64>() / per.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// H = A for L = ½θᵀAθ + bᵀθ.
    struct Explicit {
        a: Vec<f64>,
        n: usize,
    }

    impl Operator for Explicit {
        fn dim(&self) -> usize {
            self.n
        }
        fn apply(&mut self, v: &[f64]) -> Result<Vec<f64>> {
            Ok((0..self.n)
                .map(|i| (0..self.n).map(|j| self.a[i * self.n + j] * v[j]).sum())
                .collect())
        }
    }

    fn spd(n: usize) -> Vec<f64> {
        // A = MᵀM + diag, with a few large eigenvalues.
        let m: Vec<f64> = (0..n * n)
            .map(|k| ((k * 7919 % 97) as f64 / 97.0) - 0.5)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| m[k * n + i] * m[k * n + j]).sum();
            }
            a[i * n + i] += 0.1 * i as f64;
        }
        a
    }

    #[test]
    fn the_finite_difference_product_of_a_quadratic_is_its_matrix_times_v() {
        let n = 12;
        let a = spd(n);
        let b: Vec<f64> = (0..n).map(|i| i as f64 * 0.3 - 1.0).collect();
        let theta: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let grad = |t: &[f64]| -> Result<Vec<f64>> {
            Ok((0..n)
                .map(|i| (0..n).map(|j| a[i * n + j] * t[j]).sum::<f64>() + b[i])
                .collect())
        };
        let mut fd = FdHessian::new(theta, 1e-3, grad);
        let v: Vec<f64> = (0..n).map(|i| (i as f64 * 1.7).cos()).collect();
        let got = fd.apply(&v).unwrap();
        let want = Explicit { a: a.clone(), n }.apply(&v).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9 * (1.0 + w.abs()), "{g} vs {w}");
        }
        assert_eq!(fd.gradients, 2);
    }

    #[test]
    fn power_iteration_lanczos_and_hutchinson_agree_with_the_explicit_spectrum() {
        let n = 30;
        let a = spd(n);
        let (values, _) = sym_eigen(&a, n);
        let top = *values.last().unwrap();
        let mut op = Explicit { a: a.clone(), n };
        let p = power_iteration(&mut op, None, 500, 1e-10, 1).unwrap();
        assert!((p.value - top).abs() < 1e-6 * top, "{} vs {top}", p.value);
        // A warm start at the answer converges at once.
        let again = power_iteration(&mut op, Some(&p.vector), 50, 1e-8, 2).unwrap();
        assert!(again.iterations <= 2);
        // Full Lanczos reproduces every eigenvalue; SLQ's weights sum to one.
        let runs = slq(&mut op, n, 1, 3).unwrap();
        let nodes = &runs[0].nodes;
        assert!((nodes.last().unwrap() - top).abs() < 1e-8 * top);
        assert!((nodes[0] - values[0]).abs() < 1e-8 * top);
        assert!((runs[0].weights.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        // With a full basis, the quadrature of a Rademacher vector gives vᵀAv/n·n, an
        // unbiased trace estimate; Hutchinson's mean over many vectors approaches tr A.
        let (h, se) = hutchinson(&mut op, 400, 9).unwrap();
        assert!((h - trace).abs() < 4.0 * se + 1e-9, "{h} ± {se} vs {trace}");
        let q = quadrature_trace(&runs, n);
        let v = rademacher(n, 3);
        let vav = dot(&v, &op.apply(&v).unwrap());
        assert!((q - vav).abs() < 1e-8 * vav.abs());
        // The density integrates to one.
        let (lo, hi) = node_range(&runs);
        let grid: Vec<f64> = (0..20_000)
            .map(|i| lo - 1.0 + (hi - lo + 2.0) * i as f64 / 19_999.0)
            .collect();
        let d = density(&runs, &grid);
        let integral: f64 = d.iter().sum::<f64>() * (grid[1] - grid[0]);
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }

    #[test]
    fn preconditioning_is_similar_to_the_inverse_diagonal_times_h() {
        let n = 8;
        let a = spd(n);
        let d: Vec<f64> = (0..n).map(|i| 0.5 + i as f64).collect();
        // Eigenvalues of D⁻¹A (not symmetric) equal those of D^{-1/2}AD^{-1/2}.
        let mut sym = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                sym[i * n + j] = a[i * n + j] / (d[i] * d[j]).sqrt();
            }
        }
        let (want, _) = sym_eigen(&sym, n);
        let mut inner = Explicit { a, n };
        let mut op = Preconditioned {
            inner: &mut inner,
            inv_sqrt: d.iter().map(|x| 1.0 / x.sqrt()).collect(),
        };
        let p = power_iteration(&mut op, None, 1000, 1e-12, 4).unwrap();
        assert!((p.value - want[n - 1]).abs() < 1e-6 * want[n - 1]);
    }
}
