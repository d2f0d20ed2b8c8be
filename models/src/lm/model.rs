//! The decoder of the Llama, Qwen2 and Qwen3 families in differentiable ops, under Hugging
//! Face's weight names, so one model trains and generates.
//!
//! Ours rather than candle-transformers': its models use `rms_norm`, `softmax_last_dim` and
//! `rope`, fused ops that record no gradient (shared notes, candle.md), return the last
//! position's logits only, and always append to their KV cache. Here RMSNorm, RoPE and the
//! attention softmax are written in primitive ops; attention scores and softmax run in f32
//! whatever the weights' dtype.

use super::config::LmConfig;
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

/// Additive mask value for positions a query must not see (finite, so a row that sees
/// nothing becomes uniform rather than NaN).
pub const MASKED: f32 = -1e30;

pub(super) struct Block {
    pub(super) ln1: Tensor,
    pub(super) q: Linear,
    pub(super) k: Linear,
    pub(super) v: Linear,
    pub(super) o: Linear,
    pub(super) q_norm: Option<Tensor>,
    pub(super) k_norm: Option<Tensor>,
    pub(super) ln2: Tensor,
    pub(super) gate: Linear,
    pub(super) up: Linear,
    pub(super) down: Linear,
}

/// Keys and values of the positions seen so far, per layer: `[batch, kv_heads, T, head_dim]`
/// in buffers written in place (candle-nn's cache; growing by `chunk` positions), so a step
/// copies only its own keys and values.
pub struct KvCache {
    layers: Vec<candle_nn::kv_cache::KvCache>,
    chunk: usize,
}

impl Default for KvCache {
    fn default() -> Self {
        KvCache::new(256)
    }
}

impl KvCache {
    pub fn new(chunk: usize) -> KvCache {
        KvCache {
            layers: Vec::new(),
            chunk: chunk.max(1),
        }
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.current_seq_len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Transformer {
    pub config: LmConfig,
    pub(super) embed: Embedding,
    pub(super) blocks: Vec<Block>,
    pub(super) norm: Tensor,
    /// `None`: tied to the embedding.
    pub(super) head: Option<Linear>,
    /// RoPE's inverse frequencies `[head_dim / 2]`, f32.
    pub(super) inv_freq: Tensor,
    device: Device,
}

/// RMSNorm over the last dim. Generation (`fused`) takes candle's fused kernel, which
/// records no gradient; training the primitive ops, which do.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, fused: bool) -> Result<Tensor> {
    if fused {
        return candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32);
    }
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    let y = x.broadcast_div(&(ms + eps)?.sqrt()?)?;
    y.to_dtype(dtype)?.broadcast_mul(w)
}

/// `x·Wᵀ (+ b)` over the last dim as one 2-D product, arranged for decoding's few rows.
fn linear(x: &Tensor, l: &Linear, decoding: bool) -> Result<Tensor> {
    let w = l.weight();
    let (out_dim, in_dim) = w.dims2()?;
    let mut dims = x.dims().to_vec();
    // A 2-D input needs no reshape: each one is an autograd node whose backward sums a copy
    // of the gradient, which for the logits is 50 MB.
    let flat = dims.len() == 2;
    let x2 = if flat {
        x.clone()
    } else {
        x.reshape(((), in_dim))?
    };
    let rows = x2.dim(0)?;
    let few = if decoding {
        super::few_rows::matmul_t(&x2, w)?
    } else {
        None
    };
    let y = match few {
        Some(y) => y,
        // Up to 16 rows of another dtype on the CPU: (W·xᵀ)ᵀ, so that gemm packs the rows
        // rather than the weights (a batch of 8 decoded 1.6× faster on 2 cores).
        None if decoding && rows <= 16 && x.device().is_cpu() => w.matmul(&x2.t()?)?.t()?,
        None => crate::linear::linear_t(&x2, w)?,
    };
    let y = match l.bias() {
        Some(bias) => y.broadcast_add(bias)?,
        None => y,
    };
    if flat {
        return Ok(y);
    }
    *dims.last_mut().expect("a last dim") = out_dim;
    y.reshape(dims)
}

/// HF's `rotate_half` RoPE: x·cos + [−x₂, x₁]·sin, halves not interleaved, with tables
/// from [`Transformer::rope_tables`]: candle's fused kernel when `fused` (no gradient).
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, fused: bool) -> Result<Tensor> {
    if fused {
        return candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin);
    }
    let d = x.dim(D::Minus1)?;
    let (x1, x2) = (
        x.narrow(D::Minus1, 0, d / 2)?,
        x.narrow(D::Minus1, d / 2, d / 2)?,
    );
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

/// `softmax(q·kᵀ·scale + mask)·v` as `[b, t, heads·d]` for `q` `[b, heads, t, d]`, `k` and
/// `v` `[b, kv_heads, total, d]`: grouped-query attention without repeating k and v, the
/// query heads that share a kv head stacked along the query axis. The scores in f32.
pub(super) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f64,
    fused: bool,
) -> Result<Tensor> {
    let (b, heads, t, d) = q.dims4()?;
    let (kv_heads, total) = (k.dim(1)?, k.dim(2)?);
    let rep = heads / kv_heads;
    let dtype = q.dtype();
    let qg = q.contiguous()?.reshape((b, kv_heads, rep * t, d))?;
    let scores = (qg
        .to_dtype(DType::F32)?
        .matmul(&k.to_dtype(DType::F32)?.t()?)?
        * scale)?
        .reshape((b, heads, t, total))?
        .broadcast_add(mask)?;
    let p = if fused {
        candle_nn::ops::softmax_last_dim(&scores)?
    } else {
        candle_nn::ops::softmax(&scores, D::Minus1)?
    };
    let p = p.to_dtype(dtype)?.reshape((b, kv_heads, rep * t, total))?;
    p.matmul(v)?
        .reshape((b, heads, t, d))?
        .transpose(1, 2)?
        .reshape((b, t, heads * d))
}

impl Transformer {
    /// Builds the model from `vb` (a VarMap's for training, a file's for inference).
    pub fn new(config: &LmConfig, vb: VarBuilder) -> Result<Transformer> {
        let c = config;
        let (h, q_dim, kv_dim) = (c.hidden_size, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let m = vb.pp("model");
        let ones = candle_nn::Init::Const(1.0);
        let embed = candle_nn::embedding(c.vocab_size, h, m.pp("embed_tokens"))?;
        let blocks = (0..c.layers)
            .map(|i| {
                let l = m.pp(format!("layers.{i}"));
                let a = l.pp("self_attn");
                let mlp = l.pp("mlp");
                let lin_b = |d_in, d_out, p: &str| {
                    if c.qkv_bias {
                        candle_nn::linear(d_in, d_out, a.pp(p))
                    } else {
                        candle_nn::linear_no_bias(d_in, d_out, a.pp(p))
                    }
                };
                Ok(Block {
                    ln1: l.get_with_hints(h, "input_layernorm.weight", ones)?,
                    q: lin_b(h, q_dim, "q_proj")?,
                    k: lin_b(h, kv_dim, "k_proj")?,
                    v: lin_b(h, kv_dim, "v_proj")?,
                    o: candle_nn::linear_no_bias(q_dim, h, a.pp("o_proj"))?,
                    q_norm: c
                        .qk_norm
                        .then(|| a.get_with_hints(c.head_dim, "q_norm.weight", ones))
                        .transpose()?,
                    k_norm: c
                        .qk_norm
                        .then(|| a.get_with_hints(c.head_dim, "k_norm.weight", ones))
                        .transpose()?,
                    ln2: l.get_with_hints(h, "post_attention_layernorm.weight", ones)?,
                    gate: candle_nn::linear_no_bias(h, c.intermediate_size, mlp.pp("gate_proj"))?,
                    up: candle_nn::linear_no_bias(h, c.intermediate_size, mlp.pp("up_proj"))?,
                    down: candle_nn::linear_no_bias(c.intermediate_size, h, mlp.pp("down_proj"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = m.get_with_hints(h, "norm.weight", ones)?;
        let head = if c.tie_word_embeddings {
            None
        } else {
            Some(candle_nn::linear_no_bias(
                h,
                c.vocab_size,
                vb.pp("lm_head"),
            )?)
        };
        let device = vb.device().clone();
        Ok(Transformer {
            config: c.clone(),
            embed,
            blocks,
            norm,
            head,
            inv_freq: Tensor::from_vec(
                c.inv_freq().iter().map(|&f| f as f32).collect(),
                c.head_dim / 2,
                &device,
            )?,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// RoPE's cos and sin at `positions` `[b, t]` (u32) in `dtype`: the angles position ×
    /// frequency in f32, as transformers computes them. `[b, t, head_dim / 2]` for the fused
    /// kernel, else `[b, 1, t, head_dim]` (both halves) for the primitive ops.
    fn rope_tables(
        &self,
        positions: &Tensor,
        dtype: DType,
        fused: bool,
    ) -> Result<(Tensor, Tensor)> {
        let angles = positions
            .to_dtype(DType::F32)?
            .unsqueeze(2)?
            .broadcast_mul(&self.inv_freq)?;
        let table = |half: Tensor| -> Result<Tensor> {
            if fused {
                return half.to_dtype(dtype);
            }
            Tensor::cat(&[&half, &half], D::Minus1)?
                .unsqueeze(1)?
                .to_dtype(dtype)
        };
        Ok((table(angles.cos()?)?, table(angles.sin()?)?))
    }

    /// Hidden states `[b, t, hidden]` of tokens `ids` `[b, t]` at `positions` `[b, t]`, with
    /// `mask` `[b, 1, t, T]` added to the scores (T = cached + t; see [`causal_mask`]). With
    /// a cache, the new keys and values are appended to it.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = ids.dims2()?;
        if let Some(cache) = cache.as_deref_mut()
            && cache.layers.len() != self.blocks.len()
        {
            let chunk = cache.chunk;
            cache.layers = (0..self.blocks.len())
                .map(|_| candle_nn::kv_cache::KvCache::new(2, chunk))
                .collect();
        }
        // Generation (a cache) needs no gradient, so it takes the fused kernels.
        let decoding = cache.is_some();
        let mut x = self.embed.forward(ids)?;
        let (cos, sin) = self.rope_tables(positions, x.dtype(), decoding)?;
        let scale = (c.head_dim as f64).powf(-0.5);
        for (i, blk) in self.blocks.iter().enumerate() {
            let hx = rms_norm(&x, &blk.ln1, c.rms_norm_eps, decoding)?;
            let split = |y: Tensor, heads: usize| -> Result<Tensor> {
                y.reshape((b, t, heads, c.head_dim))?.transpose(1, 2)
            };
            let mut q = split(linear(&hx, &blk.q, decoding)?, c.heads)?;
            let mut k = split(linear(&hx, &blk.k, decoding)?, c.kv_heads)?;
            let v = split(linear(&hx, &blk.v, decoding)?, c.kv_heads)?.contiguous()?;
            if let (Some(qn), Some(kn)) = (&blk.q_norm, &blk.k_norm) {
                q = rms_norm(&q, qn, c.rms_norm_eps, decoding)?;
                k = rms_norm(&k, kn, c.rms_norm_eps, decoding)?;
            }
            let q = rope(&q, &cos, &sin, decoding)?;
            let k = rope(&k, &cos, &sin, decoding)?.contiguous()?;
            let (k, v) = match cache.as_deref_mut() {
                Some(cache) => cache.layers[i].append(&k, &v)?,
                None => (k, v),
            };
            let one_token = if decoding {
                super::decode_attention::attend(&q, &k, &v, mask, scale)?
            } else {
                None
            };
            let y = match one_token {
                Some(y) => y,
                None => attention(&q, &k, &v, mask, scale, decoding)?,
            };
            x = (x + linear(&y, &blk.o, decoding)?)?;
            let hx = rms_norm(&x, &blk.ln2, c.rms_norm_eps, decoding)?;
            let act = candle_nn::ops::silu(&linear(&hx, &blk.gate, decoding)?)?;
            x = (x + linear(
                &(act * linear(&hx, &blk.up, decoding)?)?,
                &blk.down,
                decoding,
            )?)?;
        }
        rms_norm(&x, &self.norm, c.rms_norm_eps, decoding)
    }

    /// Logits `[…, vocab]` of hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head_of(hidden, false)
    }

    /// Logits of the last position of each row, for generation (no gradient).
    pub fn next_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let t = hidden.dim(1)?;
        self.head_of(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?, true)
    }

    fn head_of(&self, hidden: &Tensor, decoding: bool) -> Result<Tensor> {
        match &self.head {
            Some(head) => linear(hidden, head, decoding),
            None => linear(
                hidden,
                &Linear::new(self.embed.embeddings().clone(), None),
                decoding,
            ),
        }
    }
}

/// The additive mask `[b, 1, t, cached + t]` for `t` new tokens after `cached` ones: query
/// i of row r sees key j when j ≤ cached + i and `valid[r][j]` (false for padding).
pub fn causal_mask(
    valid: &[Vec<bool>],
    cached: usize,
    t: usize,
    device: &Device,
) -> Result<Tensor> {
    let m = causal_mask_values(valid, cached, t);
    Tensor::from_vec(m, (valid.len(), 1, t, cached + t), device)
}

/// [`causal_mask`]'s values, row-major.
pub fn causal_mask_values(valid: &[Vec<bool>], cached: usize, t: usize) -> Vec<f32> {
    let total = cached + t;
    let mut m = Vec::with_capacity(valid.len() * t * total);
    for row in valid {
        for i in 0..t {
            for j in 0..total {
                let ok = j <= cached + i && row.get(j).copied().unwrap_or(false);
                m.push(if ok { 0.0 } else { MASKED });
            }
        }
    }
    m
}
