//! The denoisers descent trains: an MLP for points and a small UNet for 8×8 to 32×32 images,
//! both conditioned on the timestep (sinusoidal embedding → MLP) and on a class (an embedding
//! table with one extra row, the null class, which label dropout trains for CFG). Built from
//! differentiable candle ops only (group norm written out; see shared/notes/candle.md).

use crate::nn::{Init, Param};
use candle_core::{D, Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenoiserArch {
    /// For points (any flat sample): dense layers, the embedding added before each activation.
    Mlp,
    /// For images `[c, h, w]`: residual conv blocks per level, 2×2 average pooling down,
    /// nearest upsampling back, skip connections by concatenation.
    Unet,
}

/// What to build; saved as the model folder's `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenoiserSpec {
    pub arch: DenoiserArch,
    /// One sample's shape, `[2]` or `[1, 8, 8]`.
    pub sample_shape: Vec<usize>,
    /// Conditioning classes; row `classes` of the table is the null class.
    pub classes: usize,
    /// MLP widths.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// UNet channels per level.
    #[serde(default)]
    pub channels: Vec<usize>,
    /// Width of the timestep and class embedding.
    pub embed_dim: usize,
}

impl DenoiserSpec {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.embed_dim < 2 || !self.embed_dim.is_multiple_of(2) {
            return Err(format!(
                "embedding width {} must be even and ≥ 2",
                self.embed_dim
            ));
        }
        match self.arch {
            DenoiserArch::Mlp => {
                if self.hidden.is_empty() || self.hidden.contains(&0) {
                    return Err("an mlp denoiser needs model.hidden, widths ≥ 1".into());
                }
            }
            DenoiserArch::Unet => {
                let [_, h, w] = self.sample_shape[..] else {
                    return Err(format!(
                        "a unet needs images [channels, height, width], not samples of shape {:?}",
                        self.sample_shape
                    ));
                };
                if self.channels.is_empty() || self.channels.contains(&0) {
                    return Err("a unet needs model.channels, one count ≥ 1 per level".into());
                }
                let f = 1 << (self.channels.len() - 1);
                if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
                    return Err(format!(
                        "{} levels halve the image {} times; {h}×{w} is not divisible by {f}",
                        self.channels.len(),
                        self.channels.len() - 1
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn features(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Activation elements one sample keeps through a training step (an estimate: each
    /// dense layer about eight of its width, each residual block about ten maps of its
    /// size, forward and backward); a forward pass alone keeps about half.
    pub fn activation_elems(&self) -> u64 {
        match self.arch {
            DenoiserArch::Mlp => self.hidden.iter().map(|&h| h as u64 * 8).sum(),
            DenoiserArch::Unet => {
                let (h, w) = (self.sample_shape[1] as u64, self.sample_shape[2] as u64);
                self.channels
                    .iter()
                    .enumerate()
                    .map(|(i, &c)| 2 * 10 * c as u64 * (h >> i) * (w >> i))
                    .sum()
            }
        }
    }

    /// Parameters of the net [`Denoiser::new`] builds, counted without building it.
    pub fn param_count(&self) -> u64 {
        let e = self.embed_dim as u64;
        let lin = |i: u64, o: u64| i.saturating_mul(o).saturating_add(o);
        let conv =
            |i: u64, o: u64, k: u64| i.saturating_mul(o).saturating_mul(k * k).saturating_add(o);
        let res = |i: u64, o: u64| {
            2 * i
                + conv(i, o, 3)
                + lin(e, o)
                + 2 * o
                + conv(o, o, 3)
                + if i == o { 0 } else { conv(i, o, 1) }
        };
        let mut n = 2 * lin(e, e) + (self.classes as u64 + 1) * e;
        match self.arch {
            DenoiserArch::Mlp => {
                let f = self.features() as u64;
                let h: Vec<u64> = self.hidden.iter().map(|&v| v as u64).collect();
                n += lin(f, h[0]);
                let mut w = h[0];
                for &o in &h {
                    n += lin(w, o) + lin(e, o);
                    w = o;
                }
                n += lin(w, f);
            }
            DenoiserArch::Unet => {
                let ci = self.sample_shape[0] as u64;
                let ch: Vec<u64> = self.channels.iter().map(|&v| v as u64).collect();
                n += conv(ci, ch[0], 3);
                let mut c = ch[0];
                for &o in &ch {
                    n += res(c, o);
                    c = o;
                }
                n += res(c, c);
                for &s in ch.iter().rev() {
                    n += res(c + s, s);
                    c = s;
                }
                n += 2 * c + conv(c, ci, 3);
            }
        }
        n
    }
}

pub(super) struct Linear {
    pub(super) w: Tensor,
    pub(super) b: Tensor,
}

impl Linear {
    fn new(init: &mut Init, name: &str, fan_in: usize, out: usize) -> Result<Linear> {
        Ok(Linear {
            w: init.uniform(format!("{name}.weight"), &[fan_in, out], fan_in)?,
            b: init.uniform(format!("{name}.bias"), &[out], fan_in)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.w)?.broadcast_add(&self.b)
    }
}

pub(super) struct Conv {
    pub(super) w: Tensor,
    pub(super) b: Tensor,
    pad: usize,
}

impl Conv {
    fn new(init: &mut Init, name: &str, c_in: usize, c_out: usize, k: usize) -> Result<Conv> {
        let fan_in = c_in * k * k;
        Ok(Conv {
            w: init.uniform(format!("{name}.weight"), &[c_out, c_in, k, k], fan_in)?,
            b: init.uniform(format!("{name}.bias"), &[c_out], fan_in)?,
            pad: k / 2,
        })
    }

    /// Zero-initialised, so a block starts as the identity (a common diffusion choice: the
    /// untrained net predicts 0 rather than noise of its own).
    fn zeros(init: &mut Init, name: &str, c_in: usize, c_out: usize) -> Result<Conv> {
        Ok(Conv {
            w: init.constant(format!("{name}.weight"), &[c_out, c_in, 3, 3], 0.0)?,
            b: init.constant(format!("{name}.bias"), &[c_out], 0.0)?,
            pad: 1,
        })
    }

    /// A same-size convolution as one matrix product over shifted copies of the input
    /// (im2col in differentiable ops), weights on the left so the result is already NCHW.
    /// Measured against candle's `conv2d` on the digits UNet (BENCHMARKS.md): the forward pass
    /// about as fast, a training step faster.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (c_out, _, k, _) = self.w.dims4()?;
        let cols = if k == 1 {
            x.reshape((b, c, h * w))?
        } else {
            let p = self.pad;
            let xp = x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
            let mut shifted = Vec::with_capacity(k * k);
            for dy in 0..k {
                for dx in 0..k {
                    shifted.push(xp.narrow(2, dy, h)?.narrow(3, dx, w)?);
                }
            }
            Tensor::stack(&shifted, 2)?.reshape((b, c * k * k, h * w))?
        };
        // [c_out, c·k²] × [b, c·k², h·w] → [b, c_out, h·w]: already NCHW, no transposes.
        let wmat = self.w.reshape((c_out, c * k * k))?;
        wmat.broadcast_matmul(&cols)?
            .broadcast_add(&self.b.reshape((1, c_out, 1))?)?
            .reshape((b, c_out, h, w))
    }
}

pub(super) struct GroupNorm {
    pub(super) gamma: Tensor,
    pub(super) beta: Tensor,
    pub(super) groups: usize,
}

impl GroupNorm {
    fn new(init: &mut Init, name: &str, c: usize) -> Result<GroupNorm> {
        let groups = [8, 4, 2, 1]
            .into_iter()
            .find(|g| c.is_multiple_of(*g))
            .unwrap_or(1);
        Ok(GroupNorm {
            gamma: init.constant(format!("{name}.weight"), &[c], 1.0)?,
            beta: init.constant(format!("{name}.bias"), &[c], 0.0)?,
            groups,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let g = x.reshape((b, self.groups, (c / self.groups) * h * w))?;
        let mean = g.mean_keepdim(D::Minus1)?;
        let gc = g.broadcast_sub(&mean)?;
        let var = gc.sqr()?.mean_keepdim(D::Minus1)?;
        let n = gc
            .broadcast_div(&(var + 1e-5)?.sqrt()?)?
            .reshape((b, c, h, w))?;
        n.broadcast_mul(&self.gamma.reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.beta.reshape((1, c, 1, 1))?)
    }
}

pub(super) struct ResBlock {
    pub(super) norm1: GroupNorm,
    pub(super) conv1: Conv,
    pub(super) emb: Linear,
    pub(super) norm2: GroupNorm,
    pub(super) conv2: Conv,
    pub(super) skip: Option<Conv>,
}

impl ResBlock {
    fn new(init: &mut Init, name: &str, c_in: usize, c_out: usize, e: usize) -> Result<ResBlock> {
        Ok(ResBlock {
            norm1: GroupNorm::new(init, &format!("{name}.norm1"), c_in)?,
            conv1: Conv::new(init, &format!("{name}.conv1"), c_in, c_out, 3)?,
            emb: Linear::new(init, &format!("{name}.time_emb_proj"), e, c_out)?,
            norm2: GroupNorm::new(init, &format!("{name}.norm2"), c_out)?,
            conv2: Conv::zeros(init, &format!("{name}.conv2"), c_out, c_out)?,
            skip: if c_in == c_out {
                None
            } else {
                Some(Conv::new(
                    init,
                    &format!("{name}.conv_shortcut"),
                    c_in,
                    c_out,
                    1,
                )?)
            },
        })
    }

    fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x)?.silu()?)?;
        let e = self.emb.forward(&emb.silu()?)?.unsqueeze(2)?.unsqueeze(3)?;
        let h = h.broadcast_add(&e)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?.silu()?)?;
        let skip = match &self.skip {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        h + skip
    }
}

pub(super) enum Body {
    Mlp {
        input: Linear,
        layers: Vec<(Linear, Linear)>,
        output: Linear,
    },
    Unet {
        conv_in: Conv,
        down: Vec<ResBlock>,
        mid: ResBlock,
        up: Vec<ResBlock>,
        norm_out: GroupNorm,
        conv_out: Conv,
    },
}

/// A denoiser: `forward(x, t, class)` predicts the model output (ε, v or x0, as trained).
pub struct Denoiser {
    spec: DenoiserSpec,
    pub(super) time1: Linear,
    pub(super) time2: Linear,
    pub(super) class_table: Tensor,
    pub(super) body: Body,
    params: Vec<Param>,
}

impl Denoiser {
    pub fn new(spec: DenoiserSpec, seed: u64, device: &Device) -> Result<Denoiser> {
        spec.check().map_err(candle_core::Error::Msg)?;
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            params: Vec::new(),
        };
        let e = spec.embed_dim;
        let time1 = Linear::new(&mut init, "time_embedding.linear_1", e, e)?;
        let time2 = Linear::new(&mut init, "time_embedding.linear_2", e, e)?;
        let class_table =
            init.uniform("class_embedding.weight".into(), &[spec.classes + 1, e], 1)?;
        let body = match spec.arch {
            DenoiserArch::Mlp => {
                let f = spec.features();
                let input = Linear::new(&mut init, "input", f, spec.hidden[0])?;
                let mut layers = Vec::new();
                let mut width = spec.hidden[0];
                for (i, &out) in spec.hidden.iter().enumerate() {
                    let name = format!("layers.{i}");
                    layers.push((
                        Linear::new(&mut init, &format!("{name}.linear"), width, out)?,
                        Linear::new(&mut init, &format!("{name}.emb"), e, out)?,
                    ));
                    width = out;
                }
                let output = Linear::new(&mut init, "output", width, f)?;
                Body::Mlp {
                    input,
                    layers,
                    output,
                }
            }
            DenoiserArch::Unet => {
                let c_img = spec.sample_shape[0];
                let ch = &spec.channels;
                let conv_in = Conv::new(&mut init, "conv_in", c_img, ch[0], 3)?;
                let mut down = Vec::new();
                let mut c = ch[0];
                for (i, &out) in ch.iter().enumerate() {
                    down.push(ResBlock::new(&mut init, &format!("down.{i}"), c, out, e)?);
                    c = out;
                }
                let mid = ResBlock::new(&mut init, "mid", c, c, e)?;
                let mut up = Vec::new();
                for (i, &skip) in ch.iter().enumerate().rev() {
                    up.push(ResBlock::new(
                        &mut init,
                        &format!("up.{i}"),
                        c + skip,
                        skip,
                        e,
                    )?);
                    c = skip;
                }
                let norm_out = GroupNorm::new(&mut init, "norm_out", c)?;
                let conv_out = Conv::zeros(&mut init, "conv_out", c, c_img)?;
                Body::Unet {
                    conv_in,
                    down,
                    mid,
                    up,
                    norm_out,
                    conv_out,
                }
            }
        };
        Ok(Denoiser {
            spec,
            time1,
            time2,
            class_table,
            body,
            params: init.params,
        })
    }

    pub fn spec(&self) -> &DenoiserSpec {
        &self.spec
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn device(&self) -> &Device {
        self.class_table.device()
    }

    /// `x`: `[b, ...sample_shape]`; `t`: one timestep per row (fractional allowed);
    /// `class`: one class per row, `spec.classes` for the null class.
    pub fn forward(&self, x: &Tensor, t: &[f64], class: &[u32]) -> Result<Tensor> {
        let b = x.dim(0)?;
        let dev = x.device();
        let temb = Tensor::from_vec(timestep_embedding(t, self.spec.embed_dim), (b, ()), dev)?;
        let temb = self.time2.forward(&self.time1.forward(&temb)?.silu()?)?;
        let ids = Tensor::from_vec(class.to_vec(), b, dev)?;
        let emb = (temb + self.class_table.index_select(&ids, 0)?)?;
        match &self.body {
            Body::Mlp {
                input,
                layers,
                output,
            } => {
                let mut h = input.forward(&x.flatten_from(1)?)?;
                for (lin, proj) in layers {
                    h = (lin.forward(&h)? + proj.forward(&emb)?)?.silu()?;
                }
                output.forward(&h)?.reshape(x.shape())
            }
            Body::Unet {
                conv_in,
                down,
                mid,
                up,
                norm_out,
                conv_out,
            } => {
                let mut h = conv_in.forward(x)?;
                let mut skips = Vec::new();
                for (i, block) in down.iter().enumerate() {
                    if i > 0 {
                        h = h.avg_pool2d(2)?;
                    }
                    h = block.forward(&h, &emb)?;
                    skips.push(h.clone());
                }
                h = mid.forward(&h, &emb)?;
                let levels = up.len();
                for (k, block) in up.iter().enumerate() {
                    let skip = skips.pop().expect("one skip per level");
                    h = block.forward(&Tensor::cat(&[&h, &skip], 1)?, &emb)?;
                    if k + 1 < levels {
                        let (_, _, hh, ww) = h.dims4()?;
                        h = h.upsample_nearest2d(hh * 2, ww * 2)?;
                    }
                }
                conv_out.forward(&norm_out.forward(&h)?.silu()?)
            }
        }
    }

    /// Loads weights saved by [`Denoiser::weights`] (f32, shapes checked).
    pub fn load_weights(&self, weights: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        crate::nn::load_params(&self.params, weights)
    }

    pub fn weights(&self) -> std::collections::HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
            .collect()
    }
}

/// The DDPM/diffusers sinusoidal embedding: [sin(t·f_i), cos(t·f_i)], f_i = 10000^(−i/(d/2)).
pub(super) fn timestep_embedding(t: &[f64], dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(t.len() * dim);
    for &t in t {
        let args: Vec<f64> = (0..half)
            .map(|i| t * (-(10000f64.ln()) * i as f64 / half as f64).exp())
            .collect();
        out.extend(args.iter().map(|a| a.sin() as f32));
        out.extend(args.iter().map(|a| a.cos() as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unet() -> DenoiserSpec {
        DenoiserSpec {
            arch: DenoiserArch::Unet,
            sample_shape: vec![1, 8, 8],
            classes: 10,
            hidden: vec![],
            channels: vec![8, 16],
            embed_dim: 16,
        }
    }

    #[test]
    fn outputs_have_the_sample_shape_and_depend_on_the_class() {
        let dev = Device::Cpu;
        for spec in [
            unet(),
            DenoiserSpec {
                arch: DenoiserArch::Mlp,
                sample_shape: vec![2],
                classes: 2,
                hidden: vec![16, 16],
                channels: vec![],
                embed_dim: 8,
            },
        ] {
            let net = Denoiser::new(spec.clone(), 0, &dev).unwrap();
            let shape: Vec<usize> = [3].into_iter().chain(spec.sample_shape.clone()).collect();
            let x = Tensor::randn(0f32, 1.0, shape.clone(), &dev).unwrap();
            let y = net.forward(&x, &[999.0, 10.0, 0.5], &[0, 1, 2]).unwrap();
            assert_eq!(y.dims(), &shape[..]);
            // The zero-initialised output layer of the unet hides the class at init; train
            // one gradient step's worth of signal into it by checking the MLP only.
            if spec.arch == DenoiserArch::Mlp {
                let a = net
                    .forward(&x.narrow(0, 0, 1).unwrap(), &[5.0], &[0])
                    .unwrap();
                let b = net
                    .forward(&x.narrow(0, 0, 1).unwrap(), &[5.0], &[2])
                    .unwrap();
                let d = (a - b).unwrap().abs().unwrap().sum_all().unwrap();
                assert!(d.to_scalar::<f32>().unwrap() > 0.0);
            }
        }
    }

    #[test]
    fn the_convolution_as_a_matmul_equals_candles_conv2d() {
        let dev = Device::Cpu;
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(5),
            device: &dev,
            params: Vec::new(),
        };
        for k in [1, 3] {
            let conv = Conv::new(&mut init, &format!("c{k}"), 3, 5, k).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, 3, 6, 4), &dev).unwrap();
            let want = x
                .conv2d(&conv.w, conv.pad, 1, 1, 1)
                .unwrap()
                .broadcast_add(&conv.b.reshape((1, (), 1, 1)).unwrap())
                .unwrap();
            let got = conv.forward(&x).unwrap();
            let d = (got - want).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-5, "k = {k}");
        }
    }

    #[test]
    fn a_three_level_unet_takes_32_by_32_colour_images() {
        let spec = DenoiserSpec {
            sample_shape: vec![3, 32, 32],
            channels: vec![8, 16, 32],
            ..unet()
        };
        let net = Denoiser::new(spec, 2, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 3, 32, 32), &Device::Cpu).unwrap();
        let y = net.forward(&x, &[10.0, 900.0], &[3, 10]).unwrap();
        assert_eq!(y.dims(), &[2, 3, 32, 32]);
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let dev = Device::Cpu;
        let net = Denoiser::new(unet(), 1, &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 1, 8, 8), &dev).unwrap();
        let loss = net
            .forward(&x, &[3.0, 700.0], &[1, 10])
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        // Zero-initialised output layers pass no gradient below them at first, so check the
        // output conv itself and that the set of tensors reached is complete.
        for p in net.params() {
            assert!(
                grads.get(p.var.as_tensor()).is_some(),
                "no gradient for {}",
                p.name
            );
        }
    }

    #[test]
    fn the_parameter_count_matches_the_built_net() {
        let mlp = DenoiserSpec {
            arch: DenoiserArch::Mlp,
            sample_shape: vec![2],
            classes: 3,
            hidden: vec![16, 32],
            channels: vec![],
            embed_dim: 8,
        };
        for spec in [unet(), mlp] {
            let net = Denoiser::new(spec.clone(), 0, &Device::Cpu).unwrap();
            let built: usize = net.params().iter().map(|p| p.var.elem_count()).sum();
            assert_eq!(spec.param_count(), built as u64);
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        let mut s = unet();
        s.sample_shape = vec![1, 6, 6];
        s.channels = vec![8, 8, 8];
        assert!(s.check().unwrap_err().contains("not divisible by 4"));
        s.sample_shape = vec![2];
        assert!(s.check().unwrap_err().contains("a unet needs images"));
    }
}
