//! The decoder's training pass written out by hand for f32 weights on the CPU: a forward
//! pass that keeps what the backward needs (the tape), and the backward pass.
//!
//! Through candle's autograd the SmolLM2-135M step's backward took about twice PyTorch's
//! (BENCHMARKS.md): each edge of the graph gets a zeroed buffer and an add on one thread,
//! RMSNorm, RoPE and softmax are chains of primitive ops (candle's fused ones record no
//! gradient), and every head split is a transposed copy. Here the products read heads and
//! weights in place as strided views ([`crate::gemm_host`]), the elementwise pieces are
//! single passes ([`super::host_ops`]) and each weight's gradient is written once. The
//! arithmetic is [`Transformer::forward`]'s, which other devices and dtypes train through.

use super::host_ops::{self as ops, Heads};
use super::model::Transformer;
use crate::gemm_host::{Host, Mat, gemm, host, product};
use candle_core::{DType, Device, Result, Tensor, TensorId};

/// What one block keeps: its input and every intermediate its backward reads.
struct BlockTape {
    x: Vec<f32>,
    r1: Vec<f32>,
    h1: Vec<f32>,
    /// q and k before their RMSNorm, with its `r` (Qwen3).
    qk_pre: Option<[(Vec<f32>, Vec<f32>); 2]>,
    /// q and k after RoPE, v: the projections' layouts.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: Vec<f32>,
    o: Vec<f32>,
    x2: Vec<f32>,
    r2: Vec<f32>,
    h2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    m: Vec<f32>,
}

/// The forward pass's record, for [`Tape::backward`].
pub struct Tape {
    ids: Vec<u32>,
    rows: usize,
    heads: Heads,
    cos: Vec<f32>,
    sin: Vec<f32>,
    blocks: Vec<BlockTape>,
    x_final: Vec<f32>,
    r_final: Vec<f32>,
    /// The rows the logits were computed for (`None`: all) and their final hidden states.
    logit_rows: Option<Vec<usize>>,
    h_out: Vec<f32>,
}

/// `x·Wᵀ (+ b)` for `x` `[rows, in]` and `w` `[out, in]`.
fn linear(x: &[f32], rows: usize, w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let k = x.len() / rows.max(1);
    let out = w.len() / k.max(1);
    let mut y = product(Mat::new(x, rows, k), Mat::new(w, out, k).t());
    if let Some(b) = bias {
        for row in y.chunks_mut(out) {
            for (y, b) in row.iter_mut().zip(b) {
                *y += b;
            }
        }
    }
    y
}

/// `dy` `[rows, out]` back through `x·Wᵀ`: `dyᵀ·x` `[out, in]` (W's layout).
fn weight_grad(dy: &[f32], x: &[f32], rows: usize) -> Vec<f32> {
    let (out, k) = (dy.len() / rows.max(1), x.len() / rows.max(1));
    product(Mat::new(dy, rows, out).t(), Mat::new(x, rows, k))
}

/// `dx (+)= dy·W` for `dy` `[rows, out]`, `w` `[out, in]`.
fn input_grad(dx: &mut [f32], dy: &[f32], w: &[f32], rows: usize, accumulate: bool) {
    let out = dy.len() / rows.max(1);
    let k = w.len() / out.max(1);
    gemm(
        dx,
        k,
        Mat::new(dy, rows, out),
        Mat::new(w, out, k),
        1.0,
        accumulate,
        true,
    );
}

impl Transformer {
    /// Whether [`Transformer::forward_tape`] applies: f32 weights on the CPU.
    pub fn has_tape(&self) -> bool {
        let e = self.embed.embeddings();
        e.device().is_cpu() && e.dtype() == DType::F32
    }

    /// The logits `[rows, vocab]` (row-major) of tokens `ids` `[b·t]` at `positions` `[b·t]`
    /// with `mask` `[b, t, t]` added to the scores (as [`super::model::causal_mask`] makes
    /// it, without a cache), and the tape for [`Tape::backward`]. `logit_rows`: the token
    /// rows (of the `b·t`) to compute logits for, in that order; `None` for all of them.
    pub fn forward_tape(
        &self,
        ids: &[u32],
        b: usize,
        t: usize,
        positions: &[u32],
        mask: &[f32],
        logit_rows: Option<Vec<usize>>,
    ) -> Result<(Vec<f32>, Tape)> {
        let c = &self.config;
        let n = b * t;
        if ids.len() != n || positions.len() != n || mask.len() != b * t * t {
            candle_core::bail!(
                "tape: {} ids, {} positions and a mask of {} for {b} × {t} tokens",
                ids.len(),
                positions.len(),
                mask.len()
            );
        }
        if let Some(&bad) = logit_rows.iter().flatten().find(|&&r| r >= n) {
            candle_core::bail!("tape: logits asked of row {bad} of {n}");
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            candle_core::bail!(
                "tape: token id {bad} is not below the vocabulary's {}",
                c.vocab_size
            );
        }
        let (hd, d) = (c.hidden_size, c.head_dim);
        let eps = c.rms_norm_eps as f32;
        let heads = Heads {
            b,
            t,
            heads: c.heads,
            kv_heads: c.kv_heads,
            d,
        };
        let scale = (d as f32).powf(-0.5);
        let (cos, sin) = ops::rope_tables(positions, &self.inv_freq.to_vec1::<f32>()?);
        let embed = host(self.embed.embeddings())?;
        let mut x = Vec::with_capacity(n * hd);
        for &id in ids {
            x.extend_from_slice(&embed.get()[id as usize * hd..][..hd]);
        }
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let (h1, r1) = ops::rms_forward(&x, host(&blk.ln1)?.get(), eps);
            let proj = |l: &candle_nn::Linear| -> Result<Vec<f32>> {
                let bias = l.bias().map(host).transpose()?;
                Ok(linear(
                    &h1,
                    n,
                    host(l.weight())?.get(),
                    bias.as_ref().map(Host::get),
                ))
            };
            let (mut q, mut k, v) = (proj(&blk.q)?, proj(&blk.k)?, proj(&blk.v)?);
            let qk_pre = match (&blk.q_norm, &blk.k_norm) {
                (Some(qn), Some(kn)) => {
                    let (qn_out, rq) = ops::rms_forward(&q, host(qn)?.get(), eps);
                    let (kn_out, rk) = ops::rms_forward(&k, host(kn)?.get(), eps);
                    Some([
                        (std::mem::replace(&mut q, qn_out), rq),
                        (std::mem::replace(&mut k, kn_out), rk),
                    ])
                }
                _ => None,
            };
            ops::rope(&mut q, c.heads, d, &cos, &sin, false);
            ops::rope(&mut k, c.kv_heads, d, &cos, &sin, false);
            let (p, o) = ops::attention(&q, &k, &v, mask, heads, scale);
            let mut x2 = x.clone();
            let wo = host(blk.o.weight())?;
            gemm(
                &mut x2,
                hd,
                Mat::new(&o, n, c.heads * d),
                Mat::new(wo.get(), hd, c.heads * d).t(),
                1.0,
                true,
                true,
            );
            let (h2, r2) = ops::rms_forward(&x2, host(&blk.ln2)?.get(), eps);
            let gate = linear(&h2, n, host(blk.gate.weight())?.get(), None);
            let up = linear(&h2, n, host(blk.up.weight())?.get(), None);
            let m = ops::swiglu(&gate, &up);
            let mut x3 = x2.clone();
            let inter = c.intermediate_size;
            gemm(
                &mut x3,
                hd,
                Mat::new(&m, n, inter),
                Mat::new(host(blk.down.weight())?.get(), hd, inter).t(),
                1.0,
                true,
                true,
            );
            blocks.push(BlockTape {
                x: std::mem::replace(&mut x, x3),
                r1,
                h1,
                qk_pre,
                q,
                k,
                v,
                p,
                o,
                x2,
                r2,
                h2,
                gate,
                up,
                m,
            });
        }
        let (h_final, r_final) = ops::rms_forward(&x, host(&self.norm)?.get(), eps);
        let (h_out, rows) = match &logit_rows {
            Some(rows) => (
                rows.iter()
                    .flat_map(|&r| h_final[r * hd..(r + 1) * hd].iter().copied())
                    .collect(),
                rows.len(),
            ),
            None => (h_final, n),
        };
        let logits = match &self.head {
            Some(head) => linear(&h_out, rows, host(head.weight())?.get(), None),
            None => linear(&h_out, rows, embed.get(), None),
        };
        let tape = Tape {
            ids: ids.to_vec(),
            rows: n,
            heads,
            cos,
            sin,
            blocks,
            x_final: x,
            r_final,
            logit_rows,
            h_out,
        };
        Ok((logits, tape))
    }
}

impl Tape {
    /// [`Tape::backward`]'s gradients in the order of `params` (zero for a parameter the
    /// model does not use).
    pub fn param_grads(
        &self,
        model: &Transformer,
        d_logits: &[f32],
        params: &[crate::nn::Param],
    ) -> Result<Vec<Tensor>> {
        let mut by_id: std::collections::HashMap<TensorId, Tensor> =
            self.backward(model, d_logits)?.into_iter().collect();
        params
            .iter()
            .map(|p| match by_id.remove(&p.var.as_tensor().id()) {
                Some(g) => Ok(g),
                None => p.var.zeros_like(),
            })
            .collect()
    }

    /// Every weight's gradient of `Σ d_logits ⊙ logits` (the logits of the forward pass's
    /// rows), keyed by the weight's tensor id (the id of its `Var`).
    pub fn backward(
        &self,
        model: &Transformer,
        d_logits: &[f32],
    ) -> Result<Vec<(TensorId, Tensor)>> {
        let c = &model.config;
        let (n, hd, d) = (self.rows, c.hidden_size, c.head_dim);
        let (qd, kvd, inter) = (c.heads * d, c.kv_heads * d, c.intermediate_size);
        let rows = self.logit_rows.as_ref().map_or(n, Vec::len);
        if d_logits.len() != rows * c.vocab_size {
            candle_core::bail!(
                "tape: a logits gradient of {} values for {rows} × {} logits",
                d_logits.len(),
                c.vocab_size
            );
        }
        let scale = (d as f32).powf(-0.5);
        let mut grads: Vec<(TensorId, Tensor)> = Vec::new();
        let mut put = |w: &Tensor, g: Vec<f32>| -> Result<()> {
            grads.push((w.id(), Tensor::from_vec(g, w.shape(), &Device::Cpu)?));
            Ok(())
        };
        let embed_w = model.embed.embeddings();
        let embed = host(embed_w)?;
        let head = model.head.as_ref().map(|h| host(h.weight())).transpose()?;
        let head_w = head.as_ref().unwrap_or(&embed);
        let dlog = Mat::new(d_logits, rows, c.vocab_size);
        let dh_out = product(dlog, Mat::new(head_w.get(), c.vocab_size, hd));
        let mut d_head = product(dlog.t(), Mat::new(&self.h_out, rows, hd));
        let dh_final = match &self.logit_rows {
            None => dh_out,
            Some(picked) => {
                let mut all = vec![0f32; n * hd];
                for (&r, g) in picked.iter().zip(dh_out.chunks(hd)) {
                    for (a, g) in all[r * hd..(r + 1) * hd].iter_mut().zip(g) {
                        *a += g;
                    }
                }
                all
            }
        };
        let mut dx = vec![0f32; n * hd];
        let norm = host(&model.norm)?;
        let d_norm =
            ops::rms_backward(&dh_final, &self.x_final, &self.r_final, norm.get(), &mut dx);
        put(&model.norm, d_norm)?;
        for (blk, tape) in model.blocks.iter().zip(&self.blocks).rev() {
            // The MLP: x3 = x2 + (silu(h2·Wgᵀ) ⊙ h2·Wuᵀ)·Wdᵀ.
            let mut dm = vec![0f32; n * inter];
            input_grad(&mut dm, &dx, host(blk.down.weight())?.get(), n, false);
            put(blk.down.weight(), weight_grad(&dx, &tape.m, n))?;
            let (dgate, dup) = ops::swiglu_backward(&dm, &tape.gate, &tape.up);
            put(blk.gate.weight(), weight_grad(&dgate, &tape.h2, n))?;
            put(blk.up.weight(), weight_grad(&dup, &tape.h2, n))?;
            let mut dh2 = vec![0f32; n * hd];
            input_grad(&mut dh2, &dgate, host(blk.gate.weight())?.get(), n, false);
            input_grad(&mut dh2, &dup, host(blk.up.weight())?.get(), n, true);
            let ln2 = host(&blk.ln2)?;
            put(
                &blk.ln2,
                ops::rms_backward(&dh2, &tape.x2, &tape.r2, ln2.get(), &mut dx),
            )?;
            // The attention: x2 = x + attention(q, k, v)·Woᵀ.
            let mut d_o = vec![0f32; n * qd];
            input_grad(&mut d_o, &dx, host(blk.o.weight())?.get(), n, false);
            put(blk.o.weight(), weight_grad(&dx, &tape.o, n))?;
            let (mut dq, mut dk, dv) = ops::attention_backward(
                &d_o, &tape.q, &tape.k, &tape.v, &tape.p, self.heads, scale,
            );
            ops::rope(&mut dq, c.heads, d, &self.cos, &self.sin, true);
            ops::rope(&mut dk, c.kv_heads, d, &self.cos, &self.sin, true);
            if let (Some([(q_pre, rq), (k_pre, rk)]), Some(qn), Some(kn)) =
                (&tape.qk_pre, &blk.q_norm, &blk.k_norm)
            {
                let mut dq_pre = vec![0f32; dq.len()];
                put(
                    qn,
                    ops::rms_backward(&dq, q_pre, rq, host(qn)?.get(), &mut dq_pre),
                )?;
                let mut dk_pre = vec![0f32; dk.len()];
                put(
                    kn,
                    ops::rms_backward(&dk, k_pre, rk, host(kn)?.get(), &mut dk_pre),
                )?;
                (dq, dk) = (dq_pre, dk_pre);
            }
            let mut dh1 = vec![0f32; n * hd];
            for (i, (l, dy, width)) in [(&blk.q, &dq, qd), (&blk.k, &dk, kvd), (&blk.v, &dv, kvd)]
                .into_iter()
                .enumerate()
            {
                input_grad(&mut dh1, dy, host(l.weight())?.get(), n, i > 0);
                put(l.weight(), weight_grad(dy, &tape.h1, n))?;
                if let Some(bias) = l.bias() {
                    put(bias, ops::column_sums(dy, width))?;
                }
            }
            let ln1 = host(&blk.ln1)?;
            put(
                &blk.ln1,
                ops::rms_backward(&dh1, &tape.x, &tape.r1, ln1.get(), &mut dx),
            )?;
        }
        // The embedding: each token's row gets its position's gradient.
        let mut d_embed = match head {
            Some(_) => vec![0f32; c.vocab_size * hd],
            None => std::mem::take(&mut d_head),
        };
        for (&id, g) in self.ids.iter().zip(dx.chunks(hd)) {
            for (e, g) in d_embed[id as usize * hd..][..hd].iter_mut().zip(g) {
                *e += g;
            }
        }
        drop(embed);
        if let Some(h) = &model.head {
            put(h.weight(), d_head)?;
        }
        put(embed_w, d_embed)?;
        Ok(grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::{self, config::LmConfig, model::causal_mask};
    use crate::test_util::max_abs_diff;
    use serde_json::json;

    /// Each family's shape: GQA with tied embeddings (Llama), q/k/v biases with an untied
    /// head (Qwen2), q/k RMSNorm (Qwen3).
    fn configs() -> Vec<LmConfig> {
        let base = json!({
            "vocab_size": 23, "hidden_size": 16, "intermediate_size": 24,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        });
        let with = |extra: serde_json::Value| {
            let mut j = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                j[k] = v.clone();
            }
            LmConfig::parse(&j.to_string(), "config.json").unwrap()
        };
        vec![
            with(json!({"model_type": "llama", "tie_word_embeddings": true})),
            with(json!({"model_type": "qwen2", "tie_word_embeddings": false})),
            with(json!({"model_type": "qwen3", "tie_word_embeddings": true, "head_dim": 8})),
        ]
    }

    #[test]
    fn gradients_match_autograd_for_each_family() {
        let dev = Device::Cpu;
        let (b, t) = (3, 7);
        for (i, config) in configs().into_iter().enumerate() {
            let (model, vm) = lm::init(&config, &dev, i as u64).unwrap();
            // Biases and norm weights away from their zeros and ones, so their gradients
            // are tested at a general point.
            for p in lm::params(&vm) {
                if p.var.rank() == 1 {
                    let bump = Tensor::randn(0f32, 0.3, p.var.shape(), &dev).unwrap();
                    p.var.set(&(p.var.as_tensor() + bump).unwrap()).unwrap();
                }
            }
            let ids: Vec<u32> = (0..b * t).map(|j| ((j * 7 + i) % 23) as u32).collect();
            // Left padding on the second row: its positions start after the pad.
            let valid: Vec<Vec<bool>> = (0..b)
                .map(|r| (0..t).map(|j| r != 1 || j >= 2).collect())
                .collect();
            let positions: Vec<u32> = (0..b)
                .flat_map(|r| {
                    (0..t).map(move |j| {
                        if r == 1 {
                            j.saturating_sub(2) as u32
                        } else {
                            j as u32
                        }
                    })
                })
                .collect();
            let mask = causal_mask(&valid, 0, t, &dev).unwrap();
            let targets: Vec<u32> = ids.iter().map(|&x| (x * 3 + 1) % 23).collect();
            let weights: Vec<f32> = (0..b * t).map(|j| [1.0, 0.0, 0.5][j % 3]).collect();

            let (logits, tape) = model
                .forward_tape(
                    &ids,
                    b,
                    t,
                    &positions,
                    &mask.flatten_all().unwrap().to_vec1().unwrap(),
                    None,
                )
                .unwrap();
            let (sum, d_logits) =
                crate::nll::weighted_sum_with_grad(&logits, &targets, &weights, 1.0).unwrap();
            let ours = tape.backward(&model, &d_logits).unwrap();

            let hidden = model
                .forward(
                    &Tensor::from_vec(ids.clone(), (b, t), &dev).unwrap(),
                    &Tensor::from_vec(positions.clone(), (b, t), &dev).unwrap(),
                    &mask,
                    None,
                )
                .unwrap();
            let theirs_logits = model.logits(&hidden.reshape((b * t, ())).unwrap()).unwrap();
            let ours_logits = Tensor::from_vec(logits, (b * t, config.vocab_size), &dev).unwrap();
            assert!(
                max_abs_diff(&ours_logits, &theirs_logits) < 1e-4,
                "family {i}: logits"
            );
            let loss = (crate::nll::row_nll(
                &theirs_logits,
                &Tensor::new(targets.as_slice(), &dev).unwrap(),
            )
            .unwrap()
                * Tensor::new(weights.as_slice(), &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
            assert!((loss.to_scalar::<f32>().unwrap() as f64 - sum).abs() < 1e-3);
            let params = lm::params(&vm);
            let theirs = crate::train::autograd(&loss, &params).unwrap();
            assert_eq!(
                ours.len(),
                params.len(),
                "family {i}: one gradient per weight"
            );
            for (p, want) in params.iter().zip(&theirs) {
                let got = &ours
                    .iter()
                    .find(|(id, _)| *id == p.var.as_tensor().id())
                    .expect("a gradient")
                    .1;
                let scale = want
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    .max(1e-3);
                let diff = max_abs_diff(got, want);
                assert!(
                    diff < 1e-4 * scale.max(1.0),
                    "family {i}: {} differs by {diff} (scale {scale})",
                    p.name
                );
            }
        }
    }
}
