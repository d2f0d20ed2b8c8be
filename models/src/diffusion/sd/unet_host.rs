//! The Stable Diffusion UNet (diffusers' `UNet2DConditionModel`, as `configs::unet` accepts
//! it) for f32 on the CPU, on host buffers: each latent row runs the whole network on its
//! own, so a batch spreads over the threads with no dispatch per op, and the convolutions,
//! norms and attention are the few passes `nchw_host` and this file write by hand.
//!
//! Why not candle-transformers' UNet here: it is built from private blocks whose CPU
//! convolution and elementwise ops made one step 3.4–5.2× slower than diffusers'
//! (BENCHMARKS.md); it stays the path on GPUs and for half precision. Where the two differ,
//! this one follows diffusers: GEGLU's GELU is the exact (erf) one, as PyTorch's default, where
//! candle uses the tanh approximation; every resnet takes `norm_num_groups`.

use super::configs::Unet as Config;
use crate::gemm_host::{Mat, gemm};
use crate::nchw_host::{Conv, GroupNorm, lane_sum, pad_after, silu_in_place, upsample_nearest};
use crate::simd;
use candle_core::{DType, Tensor};
use candle_transformers::models::stable_diffusion::unet_2d::BlockConfig;
use std::collections::HashMap;
use std::path::PathBuf;

/// The weights of one component, taken out by name with their sizes checked; errors name
/// `file` and the tensor.
struct Weights {
    map: HashMap<String, Tensor>,
    file: PathBuf,
}

impl Weights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let t = self
            .map
            .remove(name)
            .ok_or_else(|| format!("{}: no tensor `{name}`", self.file.display()))?;
        let want: usize = shape.iter().product();
        if t.elem_count() != want {
            return Err(format!(
                "{}: `{name}` has shape {:?}, expected {shape:?}",
                self.file.display(),
                t.dims()
            ));
        }
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(|e| format!("{}: `{name}`: {e}", self.file.display()))
    }

    fn linear(&mut self, name: &str, inp: usize, out: usize, bias: bool) -> Result<Linear, String> {
        Ok(Linear {
            w: self.take(&format!("{name}.weight"), &[out, inp])?,
            b: if bias {
                Some(self.take(&format!("{name}.bias"), &[out])?)
            } else {
                None
            },
            inp,
            out,
        })
    }

    fn conv(
        &mut self,
        name: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
    ) -> Result<Conv, String> {
        Ok(Conv {
            weight: self.take(&format!("{name}.weight"), &[c_out, c_in, k, k])?,
            bias: self.take(&format!("{name}.bias"), &[c_out])?,
            c_in,
            c_out,
            k,
            stride,
            pad: k / 2,
        })
    }

    fn group_norm(
        &mut self,
        name: &str,
        c: usize,
        groups: usize,
        eps: f64,
    ) -> Result<GroupNorm, String> {
        Ok(GroupNorm {
            weight: self.take(&format!("{name}.weight"), &[c])?,
            bias: self.take(&format!("{name}.bias"), &[c])?,
            groups,
            eps: eps as f32,
        })
    }

    fn layer_norm(&mut self, name: &str, c: usize) -> Result<LayerNorm, String> {
        Ok(LayerNorm {
            w: self.take(&format!("{name}.weight"), &[c])?,
            b: self.take(&format!("{name}.bias"), &[c])?,
        })
    }
}

/// `y = x·Wᵀ + b` over rows of tokens, `W` `[out, in]`.
struct Linear {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    inp: usize,
    out: usize,
}

impl Linear {
    fn forward(&self, x: &[f32], rows: usize, par: bool) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        self.add_to(x, rows, &mut y, par);
        y
    }

    /// `dst += x·Wᵀ + b`: a residual connection without a copy.
    fn add_to(&self, x: &[f32], rows: usize, dst: &mut [f32], par: bool) {
        if let Some(b) = &self.b {
            for r in dst.chunks_mut(self.out) {
                r.iter_mut().zip(b).for_each(|(d, b)| *d += b);
            }
        }
        let w = Mat::new(&self.w, self.out, self.inp).t();
        gemm(
            dst,
            self.out,
            Mat::new(x, rows, self.inp),
            w,
            1.0,
            true,
            par,
        );
    }
}

/// Layer norm over each token's channels, eps 1e-5 (diffusers' `BasicTransformerBlock`).
struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
}

impl LayerNorm {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        layer_norm_rows(&self.w, &self.b, x, &mut out);
        out
    }
}

fn layer_norm_rows(w: &[f32], b: &[f32], x: &[f32], out: &mut [f32]) {
    simd::widest(
        #[inline(always)]
        || {
            let c = w.len();
            for (src, dst) in x.chunks(c).zip(out.chunks_mut(c)) {
                let mean = lane_sum(src, |v| v) / c as f64;
                let var = lane_sum(src, |v| (v - mean) * (v - mean)) / c as f64;
                let inv = (1.0 / (var + 1e-5).sqrt()) as f32;
                let mean = mean as f32;
                for (((d, &s), &w), &b) in dst.iter_mut().zip(src).zip(w).zip(b) {
                    *d = (s - mean) * inv * w + b;
                }
            }
        },
    )
}

/// Multi-head attention of the tokens over themselves or over the text context.
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    /// `dst += attention(x, context)`; `ctx` is `[s, dim]` tokens or `None` for self-attention.
    fn add_to(
        &self,
        x: &[f32],
        t: usize,
        ctx: Option<(&[f32], usize)>,
        dst: &mut [f32],
        par: bool,
    ) {
        let q = self.q.forward(x, t, par);
        let (src, s) = ctx.unwrap_or((x, t));
        let (k, v) = (self.k.forward(src, s, par), self.v.forward(src, s, par));
        let inner = self.q.out;
        let d = inner / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let mut o = vec![0f32; t * inner];
        let mut p = vec![0f32; t * s];
        let mut inv = vec![0f32; t];
        for h in 0..self.heads {
            let qh = Mat::strided(&q[h * d..], t, d, inner);
            let kh = Mat::strided(&k[h * d..], s, d, inner).t();
            gemm(&mut p, s, qh, kh, scale, false, par);
            exp_rows(&mut p, s, &mut inv);
            let (pm, vh) = (Mat::new(&p, t, s), Mat::strided(&v[h * d..], s, d, inner));
            gemm(&mut o[h * d..], inner, pm, vh, 1.0, false, par);
            for (row, &inv) in o.chunks_mut(inner).zip(&inv) {
                row[h * d..(h + 1) * d].iter_mut().for_each(|v| *v *= inv);
            }
        }
        self.out.add_to(&o, t, dst, par);
    }
}

/// Each row of `p` (rows `s` wide) → e^(p − max of the row), and the reciprocal of the
/// row's sum into `inv`: the softmax, whose division is left to the (narrower) product
/// of the weights with the values.
fn exp_rows(p: &mut [f32], s: usize, inv: &mut [f32]) {
    simd::widest(
        #[inline(always)]
        || {
            for (row, inv) in p.chunks_mut(s).zip(inv) {
                *inv = 1.0 / simd::exp_minus_max(row);
            }
        },
    )
}

/// diffusers' `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward,
/// each after a layer norm and added back.
struct Block {
    norms: [LayerNorm; 3],
    attn1: Attention,
    attn2: Attention,
    ff_in: Linear,
    ff_out: Linear,
}

impl Block {
    fn forward(&self, tok: &mut [f32], t: usize, ctx: (&[f32], usize), par: bool) {
        let h = self.norms[0].forward(tok);
        self.attn1.add_to(&h, t, None, tok, par);
        let h = self.norms[1].forward(tok);
        self.attn2.add_to(&h, t, Some(ctx), tok, par);
        let h = self.norms[2].forward(tok);
        let g = self.ff_in.forward(&h, t, par);
        let f = self.ff_out.inp;
        let mut a = vec![0f32; t * f];
        geglu(&g, &mut a, f);
        self.ff_out.add_to(&a, t, tok, par);
    }
}

/// Rows `[value, gate]` of width `2f` → `value · GELU(gate)`.
fn geglu(g: &[f32], out: &mut [f32], f: usize) {
    simd::widest(
        #[inline(always)]
        || {
            for (dst, src) in out.chunks_mut(f).zip(g.chunks(2 * f)) {
                let (val, gate) = src.split_at(f);
                for ((d, &v), &g) in dst.iter_mut().zip(val).zip(gate) {
                    *d = v * simd::gelu(g);
                }
            }
        },
    )
}

/// diffusers' `Transformer2DModel`: group norm, projection to tokens, blocks, projection
/// back, plus the input. The 1×1-convolution and linear projections are the same map per
/// pixel, so both are a [`Linear`] here, applied across the channel-first maps in place.
struct Transformer {
    norm: GroupNorm,
    proj_in: Linear,
    blocks: Vec<Block>,
    proj_out: Linear,
}

impl Transformer {
    fn forward(&self, x: &[f32], hw: usize, ctx: (&[f32], usize), par: bool) -> Vec<f32> {
        let c = self.proj_in.inp;
        let n = self.norm.forward(x, hw, false);
        let inner = self.proj_in.out;
        // Tokens `[hw, inner]` straight from the `[c, hw]` maps read transposed.
        let mut tok = vec![0f32; hw * inner];
        let b = self.proj_in.b.as_deref().expect("projections have biases");
        tok.chunks_mut(inner).for_each(|r| r.copy_from_slice(b));
        let w_in = Mat::new(&self.proj_in.w, inner, c).t();
        gemm(
            &mut tok,
            inner,
            Mat::new(&n, c, hw).t(),
            w_in,
            1.0,
            true,
            par,
        );
        for block in &self.blocks {
            block.forward(&mut tok, hw, ctx, par);
        }
        let mut out = x.to_vec();
        let b = self.proj_out.b.as_deref().expect("projections have biases");
        for (row, &b) in out.chunks_mut(hw).zip(b) {
            row.iter_mut().for_each(|v| *v += b);
        }
        let w_out = Mat::new(&self.proj_out.w, c, inner);
        gemm(
            &mut out,
            hw,
            w_out,
            Mat::new(&tok, hw, inner).t(),
            1.0,
            true,
            par,
        );
        out
    }
}

/// diffusers' `ResnetBlock2D` with the time embedding added after the first convolution.
struct Resnet {
    norm1: GroupNorm,
    conv1: Conv,
    time: Linear,
    norm2: GroupNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
    scale: f32,
}

impl Resnet {
    fn load(
        w: &mut Weights,
        name: &str,
        c_in: usize,
        c_out: usize,
        cfg: &Config,
        temb: usize,
        scale: f64,
    ) -> Result<Resnet, String> {
        let (g, eps) = (cfg.config.norm_num_groups, cfg.config.norm_eps);
        Ok(Resnet {
            norm1: w.group_norm(&format!("{name}.norm1"), c_in, g, eps)?,
            conv1: w.conv(&format!("{name}.conv1"), c_in, c_out, 3, 1)?,
            time: w.linear(&format!("{name}.time_emb_proj"), temb, c_out, true)?,
            norm2: w.group_norm(&format!("{name}.norm2"), c_out, g, eps)?,
            conv2: w.conv(&format!("{name}.conv2"), c_out, c_out, 3, 1)?,
            shortcut: if c_in != c_out {
                Some(w.conv(&format!("{name}.conv_shortcut"), c_in, c_out, 1, 1)?)
            } else {
                None
            },
            scale: scale as f32,
        })
    }

    fn forward(&self, x: &[f32], h: usize, w: usize, temb: &[f32], par: bool) -> Vec<f32> {
        let hw = h * w;
        let a = self.norm1.forward(x, hw, true);
        let tb = self.time.forward(temb, 1, false);
        let a = self.conv1.forward(&a, h, w, Some(&tb), par);
        let a = self.norm2.forward(&a, hw, true);
        let mut out = self.conv2.forward(&a, h, w, None, par);
        match &self.shortcut {
            Some(s) => {
                let sc = s.forward(x, h, w, None, par);
                out.iter_mut().zip(&sc).for_each(|(o, s)| *o += s);
            }
            None => out.iter_mut().zip(x).for_each(|(o, s)| *o += s),
        }
        if self.scale != 1.0 {
            out.iter_mut().for_each(|o| *o /= self.scale);
        }
        out
    }
}

/// One level of the down or up path: resnets, each followed by a transformer on
/// cross-attention levels, then the resampling convolution.
struct Level {
    resnets: Vec<Resnet>,
    attns: Vec<Transformer>,
    resample: Option<Conv>,
}

impl Level {
    /// Layer `j` of block `name`: its resnet from `c_in` channels, and its transformer on
    /// cross-attention levels.
    fn push_layer(
        &mut self,
        w: &mut Weights,
        name: &str,
        j: usize,
        c_in: usize,
        block: &BlockConfig,
        cfg: &Config,
    ) -> Result<(), String> {
        let (c, temb) = (block.out_channels, 4 * cfg.config.blocks[0].out_channels);
        let res = format!("{name}.resnets.{j}");
        self.resnets
            .push(Resnet::load(w, &res, c_in, c, cfg, temb, 1.0)?);
        if let Some(layers) = block.use_cross_attn {
            let attn = format!("{name}.attentions.{j}");
            let heads = block.attention_head_dim;
            self.attns
                .push(transformer(w, &attn, c, heads, layers, cfg)?);
        }
        Ok(())
    }
}

pub struct HostUnet {
    conv_in: Conv,
    time: [Linear; 2],
    flip_sin_to_cos: bool,
    freq_shift: f64,
    center_input: bool,
    /// The downsampler's padding is (0, 1, 0, 1) rather than 1 on every side.
    pad_after_only: bool,
    down: Vec<Level>,
    mid: (Resnet, Vec<(Transformer, Resnet)>),
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv,
    pub in_channels: usize,
    context_dim: usize,
}

fn transformer(
    w: &mut Weights,
    name: &str,
    c: usize,
    heads: usize,
    layers: usize,
    cfg: &Config,
) -> Result<Transformer, String> {
    let ctx = cfg.config.cross_attention_dim;
    let proj = |w: &mut Weights, which: &str, inp: usize, out: usize| -> Result<Linear, String> {
        // A 1×1 convolution's `[out, in, 1, 1]` or a linear layer's `[out, in]`: one layout.
        w.linear(&format!("{name}.{which}"), inp, out, true)
    };
    let proj_in = proj(w, "proj_in", c, c)?;
    let mut blocks = Vec::new();
    for l in 0..layers {
        let b = format!("{name}.transformer_blocks.{l}");
        let attn = |w: &mut Weights, which: &str, kv: usize| -> Result<Attention, String> {
            let a = format!("{b}.{which}");
            Ok(Attention {
                q: w.linear(&format!("{a}.to_q"), c, c, false)?,
                k: w.linear(&format!("{a}.to_k"), kv, c, false)?,
                v: w.linear(&format!("{a}.to_v"), kv, c, false)?,
                out: w.linear(&format!("{a}.to_out.0"), c, c, true)?,
                heads,
            })
        };
        blocks.push(Block {
            norms: [
                w.layer_norm(&format!("{b}.norm1"), c)?,
                w.layer_norm(&format!("{b}.norm2"), c)?,
                w.layer_norm(&format!("{b}.norm3"), c)?,
            ],
            attn1: attn(w, "attn1", c)?,
            attn2: attn(w, "attn2", ctx)?,
            ff_in: w.linear(&format!("{b}.ff.net.0.proj"), c, 8 * c, true)?,
            ff_out: w.linear(&format!("{b}.ff.net.2"), 4 * c, c, true)?,
        });
    }
    Ok(Transformer {
        norm: w.group_norm(&format!("{name}.norm"), c, cfg.config.norm_num_groups, 1e-6)?,
        proj_in,
        blocks,
        proj_out: proj(w, "proj_out", c, c)?,
    })
}

impl HostUnet {
    pub fn load(cfg: &Config, files: &[PathBuf]) -> Result<HostUnet, String> {
        let mut w = Weights {
            map: crate::weights::load_all(files)?,
            // The file, or the folder of a sharded set (a tensor may be in any shard).
            file: match files {
                [one] => one.clone(),
                _ => files
                    .first()
                    .and_then(|f| f.parent())
                    .map(PathBuf::from)
                    .unwrap_or_default(),
            },
        };
        let c = &cfg.config;
        let blocks = &c.blocks;
        let n = blocks.len();
        let c0 = blocks[0].out_channels;
        let temb = 4 * c0;
        let lpb = c.layers_per_block;
        let mut down = Vec::new();
        let mut prev = c0;
        for (i, b) in blocks.iter().enumerate() {
            let name = format!("down_blocks.{i}");
            let mut level = Level {
                resnets: vec![],
                attns: vec![],
                resample: None,
            };
            for j in 0..lpb {
                let c_in = if j == 0 { prev } else { b.out_channels };
                level.push_layer(&mut w, &name, j, c_in, b, cfg)?;
            }
            if i + 1 < n {
                let mut conv = w.conv(
                    &format!("{name}.downsamplers.0.conv"),
                    b.out_channels,
                    b.out_channels,
                    3,
                    2,
                )?;
                conv.pad = c.downsample_padding;
                level.resample = Some(conv);
            }
            prev = b.out_channels;
            down.push(level);
        }
        let last = &blocks[n - 1];
        let mid_layers = last.use_cross_attn.unwrap_or(1);
        let s = c.mid_block_scale_factor;
        let mid = (
            Resnet::load(&mut w, "mid_block.resnets.0", prev, prev, cfg, temb, s)?,
            vec![(
                transformer(
                    &mut w,
                    "mid_block.attentions.0",
                    prev,
                    last.attention_head_dim,
                    mid_layers,
                    cfg,
                )?,
                Resnet::load(&mut w, "mid_block.resnets.1", prev, prev, cfg, temb, s)?,
            )],
        );
        let mut up = Vec::new();
        for i in 0..n {
            let b = &blocks[n - 1 - i];
            let name = format!("up_blocks.{i}");
            // Skip widths, popped last-first: the down path's outputs in reverse.
            let skip_in = blocks[(n - 1 - i).saturating_sub(1)].out_channels;
            let mut level = Level {
                resnets: vec![],
                attns: vec![],
                resample: None,
            };
            for j in 0..=lpb {
                let res_in = if j == 0 { prev } else { b.out_channels };
                let skip = if j == lpb { skip_in } else { b.out_channels };
                level.push_layer(&mut w, &name, j, res_in + skip, b, cfg)?;
            }
            if i + 1 < n {
                level.resample = Some(w.conv(
                    &format!("{name}.upsamplers.0.conv"),
                    b.out_channels,
                    b.out_channels,
                    3,
                    1,
                )?);
            }
            prev = b.out_channels;
            up.push(level);
        }
        let unet = HostUnet {
            conv_in: w.conv("conv_in", cfg.in_channels, c0, 3, 1)?,
            time: [
                w.linear("time_embedding.linear_1", c0, temb, true)?,
                w.linear("time_embedding.linear_2", temb, temb, true)?,
            ],
            flip_sin_to_cos: c.flip_sin_to_cos,
            freq_shift: c.freq_shift,
            center_input: c.center_input_sample,
            pad_after_only: c.downsample_padding == 0,
            down,
            mid,
            up,
            norm_out: w.group_norm("conv_norm_out", c0, c.norm_num_groups, c.norm_eps)?,
            conv_out: w.conv("conv_out", c0, cfg.out_channels, 3, 1)?,
            in_channels: cfg.in_channels,
            context_dim: c.cross_attention_dim,
        };
        Ok(unet)
    }

    /// SiLU of the time embedding of `t`, as every resnet takes it: sinusoids computed in
    /// f32 as diffusers does, then the two-layer MLP.
    fn time_embedding(&self, t: f64) -> Vec<f32> {
        let c0 = self.time[0].inp;
        let half = c0 / 2;
        let mut emb = vec![0f32; c0];
        let ln = -(10000f64.ln()) as f32;
        for i in 0..half {
            let f = (ln * i as f32 / (half as f32 - self.freq_shift as f32)).exp();
            let a = t as f32 * f;
            let (first, second) = if self.flip_sin_to_cos {
                (a.cos(), a.sin())
            } else {
                (a.sin(), a.cos())
            };
            emb[i] = first;
            emb[half + i] = second;
        }
        let mut h = self.time[0].forward(&emb, 1, false);
        silu_in_place(&mut h);
        let mut h = self.time[1].forward(&h, 1, false);
        silu_in_place(&mut h);
        h
    }

    /// ε (or v) for `x` `[b, c, h, w]` at timestep `t` with the context `[b, s, dim]`, all flat.
    pub fn forward(
        &self,
        x: &[f32],
        b: usize,
        h: usize,
        w: usize,
        t: f64,
        ctx: &[f32],
    ) -> Vec<f32> {
        let temb = self.time_embedding(t);
        let row = x.len() / b.max(1);
        let s = ctx.len() / b.max(1) / self.context_dim;
        let ctx_row = ctx.len() / b.max(1);
        let one = |i: usize, par: bool| {
            self.forward_row(
                &x[i * row..(i + 1) * row],
                h,
                w,
                &temb,
                (&ctx[i * ctx_row..(i + 1) * ctx_row], s),
                par,
            )
        };
        crate::nchw_host::per_row(b, one)
    }

    fn forward_row(
        &self,
        x: &[f32],
        mut h: usize,
        mut w: usize,
        temb: &[f32],
        ctx: (&[f32], usize),
        par: bool,
    ) -> Vec<f32> {
        let centred: Vec<f32>;
        let x = if self.center_input {
            centred = x.iter().map(|v| 2.0 * v - 1.0).collect();
            &centred
        } else {
            x
        };
        let mut cur = self.conv_in.forward(x, h, w, None, par);
        let mut skips = vec![(cur.clone(), h, w)];
        for level in &self.down {
            for (j, r) in level.resnets.iter().enumerate() {
                cur = r.forward(&cur, h, w, temb, par);
                if let Some(a) = level.attns.get(j) {
                    cur = a.forward(&cur, h * w, ctx, par);
                }
                skips.push((cur.clone(), h, w));
            }
            if let Some(d) = &level.resample {
                cur = if self.pad_after_only {
                    let c = cur.len() / (h * w);
                    let padded = pad_after(&cur, c, h, w);
                    let (ph, pw) = (h + 1, w + 1);
                    let out = d.forward(&padded, ph, pw, None, par);
                    (h, w) = d.out_size(ph, pw);
                    out
                } else {
                    let out = d.forward(&cur, h, w, None, par);
                    (h, w) = d.out_size(h, w);
                    out
                };
                skips.push((cur.clone(), h, w));
            }
        }
        let (first, rest) = &self.mid;
        cur = first.forward(&cur, h, w, temb, par);
        for (a, r) in rest {
            cur = a.forward(&cur, h * w, ctx, par);
            cur = r.forward(&cur, h, w, temb, par);
        }
        for level in &self.up {
            for (j, r) in level.resnets.iter().enumerate() {
                let (skip, ..) = skips.pop().expect("a skip per up resnet");
                cur.extend_from_slice(&skip);
                cur = r.forward(&cur, h, w, temb, par);
                if let Some(a) = level.attns.get(j) {
                    cur = a.forward(&cur, h * w, ctx, par);
                }
            }
            if let Some(u) = &level.resample {
                // To the size of the skip this level's output meets next (twice the size,
                // unless the input did not divide evenly).
                let &(_, oh, ow) = skips.last().expect("a skip below each upsampler");
                let c = cur.len() / (h * w);
                let big = upsample_nearest(&cur, c, h, w, oh, ow);
                (h, w) = (oh, ow);
                cur = u.forward(&big, h, w, None, par);
            }
        }
        let a = self.norm_out.forward(&cur, h * w, true);
        self.conv_out.forward(&a, h, w, None, par)
    }
}
