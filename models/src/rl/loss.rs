//! The GRPO objective with TRL 1.16's semantics: the clipped surrogate with ε_low/ε_high,
//! the importance ratio per token or per sequence (GSPO), the k3 KL penalty, and the four
//! aggregations. The D³S token mask multiplies the per-token loss; its normaliser is either
//! the kept tokens or, as TRL's entropy mask does, all of them.

use candle_core::{D, Result, Tensor};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Per sequence: mean over its tokens, then over sequences.
    Grpo,
    /// Σ over the batch's tokens / the batch's tokens.
    Bnpo,
    /// Σ / (sequences × max_completion_length).
    DrGrpo,
    /// Σ / the active tokens of the whole (accumulated) batch. TRL's default.
    #[default]
    Dapo,
}

impl LossType {
    pub const NAMES: &'static [&'static str] = &["grpo", "bnpo", "dr_grpo", "dapo"];
}

/// Where the importance ratio is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Token,
    /// GSPO: exp of the masked mean of the sequence's log-ratios, shared by its tokens.
    Sequence,
}

/// What the D³S token mask's loss is divided by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalizer {
    /// The kept tokens: dropped tokens leave the loss entirely (our reading of D³S).
    #[default]
    Kept,
    /// All completion tokens, as TRL's `top_entropy_quantile` mask: a step on 20% of the
    /// tokens is about 5× smaller.
    All,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSpec {
    pub loss_type: LossType,
    pub level: Level,
    pub epsilon_low: f64,
    pub epsilon_high: f64,
    /// The KL coefficient; 0 keeps no reference model.
    pub beta: f64,
    pub max_completion_length: usize,
    pub normalizer: Normalizer,
}

/// One optimisation pass's tensors, all `[n, t]` over completion tokens except `adv` `[n]`.
pub struct LossInputs<'a> {
    /// log π_θ of each completion token (with gradient), at the sampling temperature.
    pub logp: &'a Tensor,
    /// log π_old (detached): the policy that generated the completions.
    pub old_logp: &'a Tensor,
    /// log π_ref, when β ≠ 0.
    pub ref_logp: Option<&'a Tensor>,
    pub adv: &'a Tensor,
    /// 1 on completion tokens (0 on padding and on masked truncated completions).
    pub mask: &'a Tensor,
    /// The D³S token mask (1 kept), when token selection is on.
    pub keep: Option<&'a Tensor>,
    /// For one micro-batch of a larger batch: the whole batch's sequences and the tokens its
    /// loss is averaged over, so that the micro-batches' gradients add up to the batch's.
    pub totals: Option<(usize, f64)>,
}

/// The loss and what TRL logs of it. (TRL's `clip_ratio/low_min` and `high_max` are the
/// extremes over processes of these batch means; with one process they equal them.)
pub struct LossOut {
    pub loss: Tensor,
    /// Fractions of completion tokens: ρ < 1 − ε_low with A < 0, ρ > 1 + ε_high with A > 0,
    /// and either.
    pub clip_low: f64,
    pub clip_high: f64,
    pub clip_region: f64,
    /// The masked mean k3 KL, when β ≠ 0.
    pub kl: Option<f64>,
}

fn masked_mean(x: &Tensor, m: &Tensor) -> Result<f64> {
    let den = m.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
    Ok((x * m)?.sum_all()?.to_scalar::<f32>()? as f64 / den)
}

/// Per-sequence masked means `[n]` (a sequence with no token gives 0).
fn row_means(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    (x * m)?
        .sum(D::Minus1)?
        .broadcast_div(&m.sum(D::Minus1)?.clamp(1.0, f64::MAX)?)
}

pub fn grpo_loss(spec: &LossSpec, x: &LossInputs) -> Result<LossOut> {
    let (n, _) = x.logp.dims2()?;
    let log_ratio = (x.logp - x.old_logp)?;
    let log_w = match spec.level {
        Level::Token => log_ratio,
        Level::Sequence => row_means(&log_ratio, x.mask)?
            .unsqueeze(1)?
            .broadcast_as(x.logp.shape())?
            .contiguous()?,
    };
    let ratio = log_w.exp()?;
    let clipped = ratio.clamp(1.0 - spec.epsilon_low, 1.0 + spec.epsilon_high)?;
    let adv = x.adv.unsqueeze(1)?;
    let l1 = ratio.broadcast_mul(&adv)?;
    let l2 = clipped.broadcast_mul(&adv)?;
    let mut per_token = l1.minimum(&l2)?.neg()?;
    // The mask the loss is averaged over.
    let mut mask = x.mask.clone();
    if let Some(keep) = x.keep {
        per_token = (per_token * keep)?;
        if spec.normalizer == Normalizer::Kept {
            mask = (&mask * keep)?;
        }
    }
    let mut kl = None;
    if let Some(r) = x.ref_logp
        && spec.beta != 0.0
    {
        let d = (r - x.logp)?;
        let k3 = ((d.exp()? - &d)? - 1.0)?;
        kl = Some(masked_mean(&k3.detach(), x.mask)?);
        per_token = (per_token + (k3 * spec.beta)?)?;
    }
    let masked = (&per_token * &mask)?;
    let rows = x.totals.map_or(n, |t| t.0);
    let loss = match spec.loss_type {
        LossType::Grpo => (row_means(&per_token, &mask)?.sum_all()? / rows as f64)?,
        LossType::Bnpo | LossType::Dapo => match x.totals {
            // One process: TRL's global (dapo) and local (bnpo) batches are the same batch;
            // with micro-batches, both are divided by the whole batch's tokens.
            Some((_, tokens)) => (masked.sum_all()? / tokens.max(1.0))?,
            None => {
                let den = mask.sum_all()?.clamp(1.0, f64::MAX)?;
                masked.sum_all()?.broadcast_div(&den)?
            }
        },
        LossType::DrGrpo => (masked.sum_all()? / (rows * spec.max_completion_length) as f64)?,
    };
    // Clipping, as TRL counts it (on the completion mask, before any token selection).
    let ratio_full = ratio.detach();
    let adv_full = adv.broadcast_as(x.logp.shape())?;
    let zeros = adv_full.zeros_like()?;
    let low = ratio_full
        .lt(1.0 - spec.epsilon_low)?
        .mul(&adv_full.lt(&zeros)?)?
        .to_dtype(x.mask.dtype())?;
    let high = ratio_full
        .gt(1.0 + spec.epsilon_high)?
        .mul(&adv_full.gt(&zeros)?)?
        .to_dtype(x.mask.dtype())?;
    let region = low.maximum(&high)?;
    Ok(LossOut {
        loss,
        clip_low: masked_mean(&low, x.mask)?,
        clip_high: masked_mean(&high, x.mask)?,
        clip_region: masked_mean(&region, x.mask)?,
        kl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// TRL's formulas in plain f64, per token: the reference the tensor code is checked
    /// against.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        spec: &LossSpec,
        lp: &[Vec<f64>],
        old: &[Vec<f64>],
        refp: Option<&[Vec<f64>]>,
        adv: &[f64],
        mask: &[Vec<f64>],
        keep: Option<&[Vec<f64>]>,
    ) -> f64 {
        let n = lp.len();
        let mut per = vec![];
        let mut den_mask = vec![];
        for i in 0..n {
            let t = lp[i].len();
            let msum: f64 = mask[i].iter().sum::<f64>().max(1.0);
            let seq_lw: f64 = (0..t)
                .map(|j| (lp[i][j] - old[i][j]) * mask[i][j])
                .sum::<f64>()
                / msum;
            let mut row = vec![];
            let mut drow = vec![];
            for j in 0..t {
                let lw = match spec.level {
                    Level::Token => lp[i][j] - old[i][j],
                    Level::Sequence => seq_lw,
                };
                let r = lw.exp();
                let c = r.clamp(1.0 - spec.epsilon_low, 1.0 + spec.epsilon_high);
                let mut l = -(r * adv[i]).min(c * adv[i]);
                let mut m = mask[i][j];
                if let Some(k) = keep {
                    l *= k[i][j];
                    if spec.normalizer == Normalizer::Kept {
                        m *= k[i][j];
                    }
                }
                if let Some(rf) = refp {
                    let d = rf[i][j] - lp[i][j];
                    l += spec.beta * (d.exp() - d - 1.0);
                }
                row.push(l);
                drow.push(m);
            }
            per.push(row);
            den_mask.push(drow);
        }
        let total: f64 = (0..n)
            .map(|i| {
                per[i]
                    .iter()
                    .zip(&den_mask[i])
                    .map(|(l, m)| l * m)
                    .sum::<f64>()
            })
            .sum();
        let active: f64 = den_mask.iter().flatten().sum();
        match spec.loss_type {
            LossType::Grpo => {
                (0..n)
                    .map(|i| {
                        per[i]
                            .iter()
                            .zip(&den_mask[i])
                            .map(|(l, m)| l * m)
                            .sum::<f64>()
                            / den_mask[i].iter().sum::<f64>().max(1.0)
                    })
                    .sum::<f64>()
                    / n as f64
            }
            LossType::Bnpo | LossType::Dapo => total / active.max(1.0),
            LossType::DrGrpo => total / (n * spec.max_completion_length) as f64,
        }
    }

    fn t2(v: &[Vec<f64>]) -> Tensor {
        let flat: Vec<f32> = v.iter().flatten().map(|&x| x as f32).collect();
        Tensor::from_vec(flat, (v.len(), v[0].len()), &Device::Cpu).unwrap()
    }

    fn spec(loss_type: LossType) -> LossSpec {
        LossSpec {
            loss_type,
            level: Level::Token,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            beta: 0.0,
            max_completion_length: 4,
            normalizer: Normalizer::Kept,
        }
    }

    type Case = (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>, Vec<Vec<f64>>);

    /// Two completions of 3 and 2 tokens (the second padded), the second advantage negative:
    /// (log π_θ, log π_old, advantages, mask).
    fn case() -> Case {
        let lp = vec![vec![-0.5, -1.0, -0.2], vec![-2.0, -0.1, 0.0]];
        let old = vec![vec![-0.6, -0.6, -0.3], vec![-1.5, -0.4, 0.0]];
        let adv = vec![1.5, -0.8];
        let mask = vec![vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 0.0]];
        (lp, old, adv, mask)
    }

    fn run(
        spec: &LossSpec,
        lp: &Var,
        old: &[Vec<f64>],
        adv: &[f64],
        mask: &[Vec<f64>],
        refp: Option<&[Vec<f64>]>,
        keep: Option<&[Vec<f64>]>,
    ) -> (LossOut, Tensor) {
        let adv_t = Tensor::from_vec(
            adv.iter().map(|&a| a as f32).collect::<Vec<_>>(),
            adv.len(),
            &Device::Cpu,
        )
        .unwrap();
        let (old_t, mask_t) = (t2(old), t2(mask));
        let ref_t = refp.map(t2);
        let keep_t = keep.map(t2);
        let out = grpo_loss(
            spec,
            &LossInputs {
                logp: lp.as_tensor(),
                old_logp: &old_t,
                ref_logp: ref_t.as_ref(),
                adv: &adv_t,
                mask: &mask_t,
                keep: keep_t.as_ref(),
                totals: None,
            },
        )
        .unwrap();
        let g = out
            .loss
            .backward()
            .unwrap()
            .get(lp.as_tensor())
            .unwrap()
            .clone();
        (out, g)
    }

    #[test]
    fn each_aggregation_and_its_gradient_match_trls_formulas() {
        let (lp, old, adv, mask) = case();
        let refp = vec![vec![-0.4, -0.9, -0.5], vec![-1.8, -0.3, 0.0]];
        let keep = vec![vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0]];
        for lt in [
            LossType::Grpo,
            LossType::Bnpo,
            LossType::DrGrpo,
            LossType::Dapo,
        ] {
            for level in [Level::Token, Level::Sequence] {
                for (beta, with_keep, normalizer) in [
                    (0.0, false, Normalizer::Kept),
                    (0.04, false, Normalizer::Kept),
                    (0.0, true, Normalizer::Kept),
                    (0.1, true, Normalizer::All),
                ] {
                    let s = LossSpec {
                        level,
                        beta,
                        normalizer,
                        ..spec(lt)
                    };
                    let r = (beta != 0.0).then_some(refp.as_slice());
                    let k = with_keep.then_some(keep.as_slice());
                    let var = Var::from_tensor(&t2(&lp)).unwrap();
                    let (out, grad) = run(&s, &var, &old, &adv, &mask, r, k);
                    let want = reference(&s, &lp, &old, r, &adv, &mask, k);
                    let got = out.loss.to_scalar::<f32>().unwrap() as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{lt:?} {level:?} β {beta} keep {with_keep}: {got} vs {want}"
                    );
                    // The gradient against central differences of the f64 reference.
                    let g: Vec<Vec<f32>> = grad.to_vec2().unwrap();
                    for i in 0..2 {
                        for j in 0..3 {
                            let h = 1e-5;
                            let mut up = lp.clone();
                            up[i][j] += h;
                            let mut dn = lp.clone();
                            dn[i][j] -= h;
                            let fd = (reference(&s, &up, &old, r, &adv, &mask, k)
                                - reference(&s, &dn, &old, r, &adv, &mask, k))
                                / (2.0 * h);
                            assert!(
                                (g[i][j] as f64 - fd).abs() < 1e-3,
                                "{lt:?} {level:?} β {beta} d/dlp[{i}][{j}]: {} vs {fd}",
                                g[i][j]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn micro_batches_with_the_batch_totals_add_up_to_the_whole_batch() {
        let (lp, old, adv, mask) = case();
        let keep = vec![vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0]];
        for lt in [
            LossType::Grpo,
            LossType::Bnpo,
            LossType::DrGrpo,
            LossType::Dapo,
        ] {
            let s = LossSpec {
                beta: 0.0,
                ..spec(lt)
            };
            let var = Var::from_tensor(&t2(&lp)).unwrap();
            let (whole, grad) = run(&s, &var, &old, &adv, &mask, None, Some(&keep));
            // Kept normaliser: 2 + 1 kept completion tokens in the batch.
            let (mut sum, mut g) = (0.0, vec![]);
            for i in 0..2 {
                let row = Var::from_tensor(&t2(&lp[i..i + 1])).unwrap();
                let adv_t = Tensor::new(&[adv[i] as f32], &Device::Cpu).unwrap();
                let (o, m, k) = (t2(&old[i..i + 1]), t2(&mask[i..i + 1]), t2(&keep[i..i + 1]));
                let out = grpo_loss(
                    &s,
                    &LossInputs {
                        logp: row.as_tensor(),
                        old_logp: &o,
                        ref_logp: None,
                        adv: &adv_t,
                        mask: &m,
                        keep: Some(&k),
                        totals: Some((2, 3.0)),
                    },
                )
                .unwrap();
                sum += out.loss.to_scalar::<f32>().unwrap();
                let gr = out
                    .loss
                    .backward()
                    .unwrap()
                    .get(row.as_tensor())
                    .unwrap()
                    .clone();
                g.push(gr.to_vec2::<f32>().unwrap().remove(0));
            }
            assert!(
                (sum - whole.loss.to_scalar::<f32>().unwrap()).abs() < 1e-6,
                "{lt:?}"
            );
            assert_eq!(g, grad.to_vec2::<f32>().unwrap(), "{lt:?}");
        }
    }

    #[test]
    fn a_hand_checked_case() {
        // μ = 1: π_old = π_θ, every ratio 1, nothing clipped, and the dapo loss is
        // −Σ A_i·m / Σ m = −(3·1.5 − 2·0.8) / 5 = −0.58; its gradient −A_i/5 per token.
        let (lp, _, adv, mask) = case();
        let var = Var::from_tensor(&t2(&lp)).unwrap();
        let (out, grad) = run(&spec(LossType::Dapo), &var, &lp, &adv, &mask, None, None);
        assert!((out.loss.to_scalar::<f32>().unwrap() + 0.58).abs() < 1e-6);
        assert_eq!(
            (out.clip_low, out.clip_high, out.clip_region),
            (0.0, 0.0, 0.0)
        );
        let g: Vec<Vec<f32>> = grad.to_vec2().unwrap();
        assert!(
            (g[0][0] + 0.3).abs() < 1e-6 && (g[1][1] - 0.16).abs() < 1e-6 && g[1][2] == 0.0,
            "{g:?}"
        );
        // grpo: −(1.5 + (−0.8))/2 = −0.35.
        let (out, _) = run(&spec(LossType::Grpo), &var, &lp, &adv, &mask, None, None);
        assert!((out.loss.to_scalar::<f32>().unwrap() + 0.35).abs() < 1e-6);
    }

    #[test]
    fn clipping_is_counted_as_trl_counts_it() {
        // Row 0 (A > 0): ratios e^0.1, e^-0.4, e^0.1 → none above 1.28. Row 1 (A < 0):
        // ratios e^-0.5 (< 0.8, low-clipped), e^0.3 → one of five tokens low-clipped.
        let (lp, old, adv, mask) = case();
        let var = Var::from_tensor(&t2(&lp)).unwrap();
        let (out, grad) = run(&spec(LossType::Dapo), &var, &old, &adv, &mask, None, None);
        assert!((out.clip_low - 0.2).abs() < 1e-6, "{}", out.clip_low);
        assert_eq!(out.clip_high, 0.0);
        assert!((out.clip_region - 0.2).abs() < 1e-6);
        // The clipped token gets no gradient.
        let g: Vec<Vec<f32>> = grad.to_vec2().unwrap();
        assert_eq!(g[1][0], 0.0);
    }

    #[test]
    fn the_sequence_ratio_is_the_exp_of_the_mean_log_ratio() {
        // Row 1's mean log-ratio is (−0.5 + 0.3)/2 = −0.1: e^−0.1 ≈ 0.905, inside the clip
        // range, so nothing of it is clipped at sequence level although a token was.
        let (lp, old, adv, mask) = case();
        let var = Var::from_tensor(&t2(&lp)).unwrap();
        let s = LossSpec {
            level: Level::Sequence,
            ..spec(LossType::Dapo)
        };
        let (out, _) = run(&s, &var, &old, &adv, &mask, None, None);
        assert_eq!(out.clip_low, 0.0);
        let r0 = ((0.1f64 - 0.4 + 0.1) / 3.0).exp();
        let r1 = (-0.1f64).exp();
        let want = -(3.0 * r0 * 1.5 - 2.0 * r1 * 0.8) / 5.0;
        assert!((out.loss.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-6);
    }
}
