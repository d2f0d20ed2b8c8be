//! Networks built from differentiable candle ops only (candle-nn's fused layer norm and
//! softmax record no gradient; see shared/notes/candle.md), initialised from a seed.

use crate::conv_host;
use candle_core::{D, DType, Device, Module, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Mlp,
    Cnn,
    /// A diffusion denoiser (`kind = "diffusion"` only; see `diffusion::net`).
    Unet,
    /// A decoder-only language model (`kind = "pretrain"` only; see `lm`).
    Llama,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
    Tanh,
    Silu,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu_erf(),
            Activation::Tanh => x.tanh(),
            Activation::Silu => x.silu(),
        }
    }
}

/// What to build.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Shape of one example, e.g. `[64]` or `[1, 8, 8]`.
    pub input_shape: Vec<usize>,
    /// Classes, or 1 for regression.
    pub outputs: usize,
    pub hidden: Vec<usize>,
    pub channels: Vec<usize>,
    pub activation: Activation,
    pub layer_norm: bool,
}

/// A named trainable tensor. Names are stable and are the keys in checkpoints.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub var: Var,
}

/// Sets every parameter from the tensor of its name in `weights` (converted to f32 on the
/// parameter's device), refusing a missing tensor or a shape that differs.
pub fn load_params(
    params: &[Param],
    weights: &std::collections::HashMap<String, Tensor>,
) -> Result<()> {
    for p in params {
        let t = weights.get(&p.name).ok_or_else(|| {
            candle_core::Error::Msg(format!("the weights have no tensor {}", p.name))
        })?;
        if t.dims() != p.var.dims() {
            candle_core::bail!(
                "tensor {} has shape {:?}, the model expects {:?}",
                p.name,
                t.dims(),
                p.var.dims()
            );
        }
        p.var
            .set(&t.to_dtype(DType::F32)?.to_device(p.var.device())?)?;
    }
    Ok(())
}

struct Dense {
    w: Tensor,
    b: Tensor,
    /// (gamma, beta) of a layer norm applied before the activation.
    norm: Option<(Tensor, Tensor)>,
}

struct Conv {
    w: Tensor,
    b: Tensor,
}

/// An MLP, optionally behind a stack of 3×3 convolutions with 2×2 max pooling.
pub struct Net {
    spec: ModelSpec,
    convs: Vec<Conv>,
    dense: Vec<Dense>,
    params: Vec<Param>,
}

pub(crate) struct Init<'a> {
    pub(crate) rng: ChaCha8Rng,
    pub(crate) device: &'a Device,
    pub(crate) params: Vec<Param>,
}

impl Init<'_> {
    /// PyTorch's default: U(-1/√fan_in, 1/√fan_in) for weights and biases alike.
    pub(crate) fn uniform(
        &mut self,
        name: String,
        shape: &[usize],
        fan_in: usize,
    ) -> Result<Tensor> {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        self.var(name, Tensor::from_vec(data, shape, self.device)?)
    }

    pub(crate) fn constant(&mut self, name: String, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = (Tensor::ones(shape, DType::F32, self.device)? * value as f64)?;
        self.var(name, t)
    }

    pub(crate) fn var(&mut self, name: String, t: Tensor) -> Result<Tensor> {
        let var = Var::from_tensor(&t)?;
        let tensor = var.as_tensor().clone();
        self.params.push(Param { name, var });
        Ok(tensor)
    }
}

/// One layer of a [`ModelSpec`], with its shapes: what [`Net::new`] builds and what the
/// memory estimate ([`crate::memory`]) counts, from the one description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A 3×3 convolution on `c_in × h × w` images, then ReLU-like activation and 2×2 pooling.
    Conv {
        c_in: usize,
        c_out: usize,
        h: usize,
        w: usize,
    },
    /// `fan_in → out`, with a layer norm before the activation when `norm`.
    Dense {
        fan_in: usize,
        out: usize,
        norm: bool,
    },
}

impl Layer {
    /// Elements of the layer's weight, its largest tensor (saturating: sizes are checked
    /// before anything is built, and an absurd config must not overflow the count).
    pub fn weight_elems(&self) -> u64 {
        match *self {
            Layer::Conv { c_in, c_out, .. } => (c_out as u64).saturating_mul(c_in as u64 * 9),
            Layer::Dense { fan_in, out, .. } => (fan_in as u64).saturating_mul(out as u64),
        }
    }

    /// Elements of every parameter: weight, bias, and the layer norm's scale and shift.
    pub fn param_elems(&self) -> u64 {
        let per_output = match *self {
            Layer::Conv { .. } => 1,
            Layer::Dense { norm, .. } => 1 + 2 * norm as u64,
        };
        self.weight_elems()
            .saturating_add(per_output.saturating_mul(self.outputs() as u64))
    }

    /// Output features (dense) or channels (conv).
    pub fn outputs(&self) -> usize {
        match *self {
            Layer::Conv { c_out, .. } => c_out,
            Layer::Dense { out, .. } => out,
        }
    }
}

impl ModelSpec {
    /// The layers this spec builds, in order (convolutions first), or why it cannot be built.
    pub fn layers(&self) -> std::result::Result<Vec<Layer>, String> {
        let mut layers = Vec::new();
        let mut features = self.input_shape.iter().product::<usize>();
        if self.arch == Arch::Unet {
            return Err("a unet is a diffusion denoiser; use it with kind = \"diffusion\"".into());
        }
        if self.arch == Arch::Cnn {
            let [c, h, w] = self.input_shape[..] else {
                return Err(format!(
                    "a cnn needs image-shaped inputs (channels × height × width); this dataset's \
                     examples have shape {:?}",
                    self.input_shape
                ));
            };
            let (mut c_in, mut h, mut w) = (c, h, w);
            for &c_out in &self.channels {
                if h < 2 || w < 2 {
                    return Err(format!(
                        "a cnn with {} conv layers pools {:?} below 1×1; use fewer channels entries",
                        self.channels.len(),
                        self.input_shape
                    ));
                }
                layers.push(Layer::Conv { c_in, c_out, h, w });
                (c_in, h, w) = (c_out, h / 2, w / 2);
            }
            features = c_in * h * w;
        }
        let widths: Vec<usize> = self.hidden.iter().copied().chain([self.outputs]).collect();
        for (i, &out) in widths.iter().enumerate() {
            let last = i + 1 == widths.len();
            layers.push(Layer::Dense {
                fan_in: features,
                out,
                norm: self.layer_norm && !last,
            });
            features = out;
        }
        Ok(layers)
    }
}

impl Net {
    pub fn new(spec: ModelSpec, seed: u64, device: &Device) -> Result<Net> {
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            params: Vec::new(),
        };
        let (mut convs, mut dense) = (Vec::new(), Vec::new());
        for layer in spec.layers().map_err(candle_core::Error::Msg)? {
            match layer {
                Layer::Conv { c_in, c_out, .. } => {
                    let (i, fan_in) = (convs.len(), c_in * 9);
                    convs.push(Conv {
                        w: init.uniform(format!("conv{i}.weight"), &[c_out, c_in, 3, 3], fan_in)?,
                        b: init.uniform(format!("conv{i}.bias"), &[c_out], fan_in)?,
                    });
                }
                Layer::Dense { fan_in, out, norm } => {
                    let i = dense.len();
                    let w = init.uniform(format!("fc{i}.weight"), &[fan_in, out], fan_in)?;
                    let b = init.uniform(format!("fc{i}.bias"), &[out], fan_in)?;
                    let norm = if norm {
                        Some((
                            init.constant(format!("fc{i}.norm.gamma"), &[out], 1.0)?,
                            init.constant(format!("fc{i}.norm.beta"), &[out], 0.0)?,
                        ))
                    } else {
                        None
                    };
                    dense.push(Dense { w, b, norm });
                }
            }
        }
        Ok(Net {
            spec,
            convs,
            dense,
            params: init.params,
        })
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }
}

/// What the hand-written conv forward keeps for its backward.
struct ConvTape {
    /// im2col of the layer's input, `[b·h·w, c_in·9]`.
    cols: Tensor,
    /// The weight as a matrix, `[c_in·9, c_out]`.
    wmat: Tensor,
    /// Pre-activation, `[b·h·w, c_out]`.
    z: Tensor,
    /// For each pooled value, the index of its maximum in the activation.
    from: Vec<usize>,
    /// (b, h, w, c_in, c_out) of the layer.
    dims: (usize, usize, usize, usize, usize),
}

impl Net {
    /// The loss and every parameter's gradient by a hand-written backward pass, for ReLU nets
    /// without layer norm (MLPs, and CNNs on the CPU) — the common case, and one where
    /// candle's general autograd spends about as long on bookkeeping (and, for convolutions,
    /// on a slow conv2d backward) as on the arithmetic. `None` when the net needs autograd.
    /// Gradients come in [`Net::params`] order; the network's outputs come last.
    pub fn manual_grads(
        &self,
        x: &Tensor,
        y: &Tensor,
        classify: bool,
    ) -> Result<Option<(Tensor, Vec<Tensor>, Tensor)>> {
        let plain = (self.convs.is_empty() || x.device().is_cpu())
            && self.spec.activation == Activation::Relu
            && self.dense.iter().all(|d| d.norm.is_none());
        if !plain {
            return Ok(None);
        }
        let dev = x.device();
        let batch_n = x.dim(0)?;
        // Convolutions: im2col + matmul on NHWC images, keeping what the backward needs.
        let mut tapes = Vec::with_capacity(self.convs.len());
        let flat = if self.convs.is_empty() {
            x.flatten_from(1)?
        } else {
            let (_, c0, h0, w0) = x.dims4()?;
            let mut img =
                conv_host::nchw_to_nhwc(&x.flatten_all()?.to_vec1()?, batch_n, c0, h0, w0);
            let (mut h, mut w, mut c) = (h0, w0, c0);
            for conv in &self.convs {
                let c_out = conv.w.dim(0)?;
                let cols = conv_host::im2col(&img, batch_n, h, w, c);
                let cols = Tensor::from_vec(cols, (batch_n * h * w, c * 9), dev)?;
                let wmat = conv.w.detach().reshape((c_out, c * 9))?.t()?;
                let z = cols.matmul(&wmat)?.broadcast_add(&conv.b.detach())?;
                let a: Vec<f32> = z.relu()?.flatten_all()?.to_vec1()?;
                let (pooled, from) = conv_host::max_pool(&a, batch_n, h, w, c_out);
                tapes.push(ConvTape {
                    cols,
                    wmat,
                    z,
                    from,
                    dims: (batch_n, h, w, c, c_out),
                });
                (img, h, w, c) = (pooled, h / 2, w / 2, c_out);
            }
            let nchw = conv_host::nhwc_to_nchw(&img, batch_n, c, h, w);
            Tensor::from_vec(nchw, (batch_n, c * h * w), dev)?
        };
        // Detached copies of the weights: nothing below records an autograd graph.
        let ws: Vec<Tensor> = self.dense.iter().map(|d| d.w.detach()).collect();
        let bs: Vec<Tensor> = self.dense.iter().map(|d| d.b.detach()).collect();
        let n = ws.len();
        let mut acts = vec![flat];
        let mut pre = Vec::with_capacity(n);
        for i in 0..n {
            let z = acts[i].matmul(&ws[i])?.broadcast_add(&bs[i])?;
            if i + 1 < n {
                acts.push(z.relu()?);
            }
            pre.push(z);
        }
        let out = &pre[n - 1];
        let batch = batch_n as f64;
        let (loss, mut dz) = if classify {
            let max = out.max_keepdim(1)?;
            let shifted = out.broadcast_sub(&max)?;
            let e = shifted.exp()?;
            let sum = e.sum_keepdim(1)?;
            let picked = shifted.gather(&y.unsqueeze(1)?, 1)?;
            let loss = sum.log()?.sub(&picked)?.mean_all()?;
            let classes = Tensor::arange(0u32, out.dim(1)? as u32, dev)?.unsqueeze(0)?;
            let onehot = y
                .unsqueeze(1)?
                .broadcast_eq(&classes)?
                .to_dtype(DType::F32)?;
            let p = e.broadcast_div(&sum)?;
            (loss, ((p - onehot)? / batch)?)
        } else {
            let diff = out.squeeze(1)?.sub(y)?;
            let loss = diff.sqr()?.mean_all()?;
            (loss, (diff.unsqueeze(1)? * (2.0 / batch))?)
        };
        // Bias gradients as 1ᵀ·dz: a matmul is several times faster than candle's reduction
        // over the batch dimension.
        let ones = |rows: usize| Tensor::ones((1, rows), DType::F32, dev);
        let mut dense_grads = vec![None; 2 * n];
        let mut d_flat = None;
        for i in (0..n).rev() {
            dense_grads[2 * i] = Some(acts[i].t()?.matmul(&dz)?);
            dense_grads[2 * i + 1] = Some(ones(batch_n)?.matmul(&dz)?.squeeze(0)?);
            if i > 0 {
                let mask = pre[i - 1].gt(0f32)?.to_dtype(DType::F32)?;
                dz = dz.matmul(&ws[i].t()?)?.mul(&mask)?;
            } else if !tapes.is_empty() {
                d_flat = Some(dz.matmul(&ws[0].t()?)?);
            }
        }
        let mut conv_grads = vec![None; 2 * tapes.len()];
        if let Some(d_flat) = d_flat {
            let (b, h, w, _, c) = tapes.last().expect("convs").dims;
            let mut d_img =
                conv_host::nchw_to_nhwc(&d_flat.flatten_all()?.to_vec1()?, b, c, h / 2, w / 2);
            for (l, t) in tapes.iter().enumerate().rev() {
                let (b, h, w, c_in, c_out) = t.dims;
                let d_act = conv_host::max_pool_back(&d_img, &t.from, b * h * w * c_out);
                let mask = t.z.gt(0f32)?.to_dtype(DType::F32)?;
                let dz = Tensor::from_vec(d_act, (b * h * w, c_out), dev)?.mul(&mask)?;
                let dwmat = t.cols.t()?.matmul(&dz)?;
                conv_grads[2 * l] = Some(dwmat.t()?.reshape((c_out, c_in, 3, 3))?);
                conv_grads[2 * l + 1] = Some(ones(b * h * w)?.matmul(&dz)?.squeeze(0)?);
                if l > 0 {
                    let dcols = dz.matmul(&t.wmat.t()?)?;
                    d_img = conv_host::col2im(&dcols.flatten_all()?.to_vec1()?, b, h, w, c_in);
                }
            }
        }
        let grads = conv_grads
            .into_iter()
            .chain(dense_grads)
            .map(|g| g.expect("every layer filled"))
            .collect();
        Ok(Some((loss, grads, pre.pop().expect("a dense layer"))))
    }
}

impl Module for Net {
    /// `x`: `[batch, ...input_shape]` → `[batch, outputs]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let act = self.spec.activation;
        let mut x = x.clone();
        for c in &self.convs {
            x = x.conv2d(&c.w, 1, 1, 1, 1)?;
            x = x.broadcast_add(&c.b.reshape((1, (), 1, 1))?)?;
            x = max_pool_2x2(&act.apply(&x)?)?;
        }
        let mut x = x.flatten_from(1)?;
        let n = self.dense.len();
        for (i, d) in self.dense.iter().enumerate() {
            x = x.matmul(&d.w)?.broadcast_add(&d.b)?;
            if let Some((g, b)) = &d.norm {
                x = layer_norm(&x, g, b)?;
            }
            if i + 1 < n {
                x = act.apply(&x)?;
            }
        }
        Ok(x)
    }
}

/// 2×2 max pooling with stride 2 (odd edges dropped) from a reshape and two max
/// reductions. candle's `max_pool2d` backward multiplies the gradient by the share of maxima
/// in each window instead of dividing by their count, so a unique maximum receives a quarter
/// of its gradient; the reductions' backward sends it all.
fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    let x = x.narrow(2, 0, 2 * oh)?.narrow(3, 0, 2 * ow)?;
    x.reshape((b, c, oh, 2, ow, 2))?.max(5)?.max(3)
}

/// Layer norm over the last dimension from primitive ops, so gradients flow.
fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    xn.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Mean cross-entropy of `logits` `[batch, classes]` against `labels` `[batch]` (u32).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    crate::nll::row_nll(logits, labels)?.mean_all()
}

/// Mean squared error of `pred` `[batch, 1]` against `targets` `[batch]`.
pub fn mse(pred: &Tensor, targets: &Tensor) -> Result<Tensor> {
    pred.squeeze(1)?.sub(targets)?.sqr()?.mean_all()
}

/// Number of rows whose largest logit is the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<usize> {
    let pred = logits.argmax(1)?;
    Ok(pred
        .eq(labels)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(arch: Arch) -> ModelSpec {
        ModelSpec {
            arch,
            input_shape: if arch == Arch::Cnn {
                vec![1, 8, 8]
            } else {
                vec![4]
            },
            outputs: 3,
            hidden: vec![5],
            channels: if arch == Arch::Cnn {
                vec![2, 3]
            } else {
                vec![]
            },
            activation: Activation::Relu,
            layer_norm: arch == Arch::Mlp,
        }
    }

    #[test]
    fn shapes_names_and_seeded_init() {
        let dev = Device::Cpu;
        let net = Net::new(spec(Arch::Mlp), 1, &dev).unwrap();
        let names: Vec<_> = net.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fc0.weight",
                "fc0.bias",
                "fc0.norm.gamma",
                "fc0.norm.beta",
                "fc1.weight",
                "fc1.bias"
            ]
        );
        assert_eq!(net.parameter_count(), 4 * 5 + 5 + 5 + 5 + 5 * 3 + 3);
        let x = Tensor::ones((2, 4), DType::F32, &dev).unwrap();
        assert_eq!(net.forward(&x).unwrap().dims(), [2, 3]);
        let again = Net::new(spec(Arch::Mlp), 1, &dev).unwrap();
        let w = |n: &Net| {
            n.params()[0]
                .var
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&net), w(&again));

        let cnn = Net::new(spec(Arch::Cnn), 1, &dev).unwrap();
        let x = Tensor::ones((2, 1, 8, 8), DType::F32, &dev).unwrap();
        assert_eq!(cnn.forward(&x).unwrap().dims(), [2, 3]);
        // 8×8 → 4×4 → 2×2 with 3 channels: 12 features into the dense layers.
        assert_eq!(cnn.params()[4].var.dims(), [12, 5]);
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let dev = Device::Cpu;
        for arch in [Arch::Mlp, Arch::Cnn] {
            let net = Net::new(spec(arch), 2, &dev).unwrap();
            let shape: Vec<usize> = [3]
                .into_iter()
                .chain(net.spec().input_shape.clone())
                .collect();
            let x = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
            let labels = Tensor::new(&[0u32, 2, 1], &dev).unwrap();
            let loss = cross_entropy(&net.forward(&x).unwrap(), &labels).unwrap();
            let grads = loss.backward().unwrap();
            for p in net.params() {
                assert!(
                    grads.get(p.var.as_tensor()).is_some(),
                    "{arch:?}: no gradient for {}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn the_hand_written_backward_matches_autograd() {
        let dev = Device::Cpu;
        for (classify, outputs, cnn) in [(true, 3, false), (false, 1, false), (true, 3, true)] {
            let spec = ModelSpec {
                arch: if cnn { Arch::Cnn } else { Arch::Mlp },
                input_shape: if cnn { vec![2, 7, 6] } else { vec![6] },
                outputs,
                hidden: vec![7, 5],
                channels: if cnn { vec![3, 4] } else { vec![] },
                activation: Activation::Relu,
                layer_norm: false,
            };
            let net = Net::new(spec, 3, &dev).unwrap();
            let shape: Vec<usize> = [4]
                .into_iter()
                .chain(net.spec().input_shape.clone())
                .collect();
            let x = Tensor::randn(0f32, 1.0, shape, &dev).unwrap();
            let y = if classify {
                Tensor::new(&[0u32, 2, 1, 2], &dev).unwrap()
            } else {
                Tensor::randn(0f32, 1.0, 4, &dev).unwrap()
            };
            let out = net.forward(&x).unwrap();
            let loss = if classify {
                cross_entropy(&out, &y)
            } else {
                mse(&out, &y)
            }
            .unwrap();
            let auto = loss.backward().unwrap();
            let (mloss, grads, _) = net.manual_grads(&x, &y, classify).unwrap().unwrap();
            let close = crate::test_util::max_abs_diff;
            assert!(close(&loss, &mloss) < 1e-6);
            for (p, g) in net.params().iter().zip(&grads) {
                let a = auto.get(p.var.as_tensor()).unwrap();
                assert_eq!(a.dims(), g.dims(), "{}", p.name);
                assert!(close(a, g) < 1e-5, "{}: {}", p.name, close(a, g));
            }
        }
    }

    #[test]
    fn cnn_gradients_agree_with_finite_differences() {
        let dev = Device::Cpu;
        let spec = ModelSpec {
            arch: Arch::Cnn,
            input_shape: vec![1, 8, 8],
            outputs: 3,
            hidden: vec![6],
            channels: vec![3, 4],
            activation: Activation::Relu,
            layer_norm: false,
        };
        let net = Net::new(spec, 5, &dev).unwrap();
        // Fixed inputs (candle's randn is not seeded), so the check cannot land on a ReLU or
        // max-pool kink by chance in one run and not another.
        let xs: Vec<f32> = (0..5 * 64)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
            .collect();
        let x = Tensor::from_vec(xs, (5, 1, 8, 8), &dev).unwrap();
        let y = Tensor::new(&[0u32, 1, 2, 1, 0], &dev).unwrap();
        let (_, grads, _) = net.manual_grads(&x, &y, true).unwrap().unwrap();
        let loss = |net: &Net| {
            let l = cross_entropy(&net.forward(&x).unwrap(), &y).unwrap();
            l.to_scalar::<f32>().unwrap() as f64
        };
        // A few elements of each conv tensor: (parameter index, flat element).
        for (pi, e) in [(0, 0), (0, 13), (1, 2), (2, 5), (3, 1)] {
            let var = &net.params()[pi].var;
            let orig = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let at = |delta: f32| {
                let mut v = orig.clone();
                v[e] += delta;
                var.set(&Tensor::from_vec(v, var.dims(), &dev).unwrap())
                    .unwrap();
                loss(&net)
            };
            let h = 1e-3;
            let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
            at(0.0);
            let analytic = grads[pi].flatten_all().unwrap().to_vec1::<f32>().unwrap()[e] as f64;
            let tol = 1e-3 + 0.05 * analytic.abs();
            assert!(
                (numeric - analytic).abs() < tol,
                "{}[{e}]: {numeric} vs {analytic}",
                net.params()[pi].name
            );
        }
    }

    #[test]
    fn cross_entropy_matches_the_formula() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[1.0f32, 2.0, 3.0], [1.0, 1.0, 1.0]], &dev).unwrap();
        let labels = Tensor::new(&[2u32, 0], &dev).unwrap();
        let got = cross_entropy(&logits, &labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let lse = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        let want = ((lse - 3.0) + 3f32.ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(correct(&logits, &labels).unwrap(), 2);
    }

    #[test]
    fn a_cnn_on_flat_data_is_refused_clearly() {
        let mut s = spec(Arch::Cnn);
        s.input_shape = vec![64];
        let e = Net::new(s, 0, &Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("needs image-shaped inputs"), "{e}");
    }
}
