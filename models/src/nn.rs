//! Networks built from differentiable candle ops only (candle-nn's fused layer norm and
//! softmax record no gradient; see shared/notes/candle.md), initialised from a seed.

use candle_core::{D, DType, Device, Module, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Mlp,
    Cnn,
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

struct Init<'a> {
    rng: ChaCha8Rng,
    device: &'a Device,
    params: Vec<Param>,
}

impl Init<'_> {
    /// PyTorch's default: U(-1/√fan_in, 1/√fan_in) for weights and biases alike.
    fn uniform(&mut self, name: String, shape: &[usize], fan_in: usize) -> Result<Tensor> {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        self.var(name, Tensor::from_vec(data, shape, self.device)?)
    }

    fn constant(&mut self, name: String, shape: &[usize], value: f32) -> Result<Tensor> {
        let t = (Tensor::ones(shape, DType::F32, self.device)? * value as f64)?;
        self.var(name, t)
    }

    fn var(&mut self, name: String, t: Tensor) -> Result<Tensor> {
        let var = Var::from_tensor(&t)?;
        let tensor = var.as_tensor().clone();
        self.params.push(Param { name, var });
        Ok(tensor)
    }
}

impl Net {
    pub fn new(spec: ModelSpec, seed: u64, device: &Device) -> Result<Net> {
        let mut init = Init {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device,
            params: Vec::new(),
        };
        let mut convs = Vec::new();
        let mut features = spec.input_shape.iter().product::<usize>();
        if spec.arch == Arch::Cnn {
            let [c, h, w] = spec.input_shape[..] else {
                candle_core::bail!(
                    "a cnn needs image-shaped inputs (channels × height × width); this dataset's \
                     examples have shape {:?}",
                    spec.input_shape
                );
            };
            let (mut c_in, mut h, mut w) = (c, h, w);
            for (i, &c_out) in spec.channels.iter().enumerate() {
                if h < 2 || w < 2 {
                    candle_core::bail!(
                        "a cnn with {} conv layers pools {:?} below 1×1; use fewer channels entries",
                        spec.channels.len(),
                        spec.input_shape
                    );
                }
                let fan_in = c_in * 9;
                convs.push(Conv {
                    w: init.uniform(format!("conv{i}.weight"), &[c_out, c_in, 3, 3], fan_in)?,
                    b: init.uniform(format!("conv{i}.bias"), &[c_out], fan_in)?,
                });
                (c_in, h, w) = (c_out, h / 2, w / 2);
            }
            features = c_in * h * w;
        }
        let mut dense = Vec::new();
        let widths: Vec<usize> = spec.hidden.iter().copied().chain([spec.outputs]).collect();
        for (i, &out) in widths.iter().enumerate() {
            let last = i + 1 == widths.len();
            let w = init.uniform(format!("fc{i}.weight"), &[features, out], features)?;
            let b = init.uniform(format!("fc{i}.bias"), &[out], features)?;
            let norm = if spec.layer_norm && !last {
                Some((
                    init.constant(format!("fc{i}.norm.gamma"), &[out], 1.0)?,
                    init.constant(format!("fc{i}.norm.beta"), &[out], 0.0)?,
                ))
            } else {
                None
            };
            dense.push(Dense { w, b, norm });
            features = out;
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

impl Net {
    /// The loss and every parameter's gradient by a hand-written backward pass, for the
    /// plain MLP (no convolutions, no layer norm, ReLU) — the common case, and one where
    /// candle's general autograd spends about as long on bookkeeping as on the matmuls.
    /// `None` when the net needs autograd. Gradients come in [`Net::params`] order.
    pub fn manual_grads(
        &self,
        x: &Tensor,
        y: &Tensor,
        classify: bool,
    ) -> Result<Option<(Tensor, Vec<Tensor>)>> {
        let plain = self.convs.is_empty()
            && self.spec.activation == Activation::Relu
            && self.dense.iter().all(|d| d.norm.is_none());
        if !plain {
            return Ok(None);
        }
        // Detached copies of the weights: nothing below records an autograd graph.
        let ws: Vec<Tensor> = self.dense.iter().map(|d| d.w.detach()).collect();
        let bs: Vec<Tensor> = self.dense.iter().map(|d| d.b.detach()).collect();
        let n = ws.len();
        let mut acts = vec![x.flatten_from(1)?];
        let mut pre = Vec::with_capacity(n);
        for i in 0..n {
            let z = acts[i].matmul(&ws[i])?.broadcast_add(&bs[i])?;
            if i + 1 < n {
                acts.push(z.relu()?);
            }
            pre.push(z);
        }
        let out = &pre[n - 1];
        let batch = out.dim(0)? as f64;
        let (loss, mut dz) = if classify {
            let max = out.max_keepdim(1)?;
            let shifted = out.broadcast_sub(&max)?;
            let e = shifted.exp()?;
            let sum = e.sum_keepdim(1)?;
            let picked = shifted.gather(&y.unsqueeze(1)?, 1)?;
            let loss = sum.log()?.sub(&picked)?.mean_all()?;
            let classes = Tensor::arange(0u32, out.dim(1)? as u32, out.device())?.unsqueeze(0)?;
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
        let ones = Tensor::ones((1, out.dim(0)?), DType::F32, out.device())?;
        let mut grads = vec![None; 2 * n];
        for i in (0..n).rev() {
            grads[2 * i] = Some(acts[i].t()?.matmul(&dz)?);
            grads[2 * i + 1] = Some(ones.matmul(&dz)?.squeeze(0)?);
            if i > 0 {
                let mask = pre[i - 1].gt(0f32)?.to_dtype(DType::F32)?;
                dz = dz.matmul(&ws[i].t()?)?.mul(&mask)?;
            }
        }
        let grads = grads
            .into_iter()
            .map(|g| g.expect("every layer filled"))
            .collect();
        Ok(Some((loss, grads)))
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
            x = act.apply(&x)?.max_pool2d(2)?;
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

/// Layer norm over the last dimension from primitive ops, so gradients flow.
fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
    xn.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Mean cross-entropy of `logits` `[batch, classes]` against `labels` `[batch]` (u32), from
/// a max-shifted log-softmax written in differentiable ops.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(1)?.log()?;
    let logp = shifted.broadcast_sub(&lse)?;
    let picked = logp.gather(&labels.unsqueeze(1)?, 1)?;
    picked.neg()?.mean_all()
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
        for (classify, outputs) in [(true, 3), (false, 1)] {
            let spec = ModelSpec {
                arch: Arch::Mlp,
                input_shape: vec![6],
                outputs,
                hidden: vec![7, 5],
                channels: vec![],
                activation: Activation::Relu,
                layer_norm: false,
            };
            let net = Net::new(spec, 3, &dev).unwrap();
            let x = Tensor::randn(0f32, 1.0, (4, 6), &dev).unwrap();
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
            let (mloss, grads) = net.manual_grads(&x, &y, classify).unwrap().unwrap();
            let close = |a: &Tensor, b: &Tensor| {
                let d = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap();
                d.to_scalar::<f32>().unwrap()
            };
            assert!(close(&loss, &mloss) < 1e-6);
            for (p, g) in net.params().iter().zip(&grads) {
                let a = auto.get(p.var.as_tensor()).unwrap();
                assert_eq!(a.dims(), g.dims(), "{}", p.name);
                assert!(close(a, g) < 1e-5, "{}: {}", p.name, close(a, g));
            }
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
