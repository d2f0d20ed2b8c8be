//! The CLIP text encoder of a Stable Diffusion pipeline, built from `text_encoder/config.json`.
//!
//! Ours rather than candle-transformers': its SD encoder's config has private fields (only
//! the SD 1.5/2.1 presets can be built, so a folder's own config cannot), and its public CLIP
//! config knows only `quick_gelu`, while SD 2.x's encoder uses `gelu` (erf; candle's SD 2.1
//! preset approximates it with tanh). The layout and weight names are transformers'
//! `CLIPTextModel`; the output is its `last_hidden_state`, as diffusers' pipelines use.

use super::configs::Json;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    QuickGelu,
    /// Exact (erf) GELU: transformers' "gelu".
    Gelu,
    /// tanh-approximated GELU: "gelu_new", "gelu_pytorch_tanh".
    GeluTanh,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub max_positions: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

impl ClipConfig {
    pub fn read(j: &Json) -> std::result::Result<ClipConfig, String> {
        let arch = j
            .value
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str());
        if let Some(a) = arch
            && a != "CLIPTextModel"
        {
            return Err(format!(
                "{}: \"architectures\": {a}; expected CLIPTextModel (SD 1.x/2.x text encoders)",
                j.path
            ));
        }
        let act = j.str_or("hidden_act", "quick_gelu")?;
        let activation = match act {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            other => {
                return Err(format!(
                    "{}: \"hidden_act\": {other} is not supported (quick_gelu, gelu, gelu_new)",
                    j.path
                ));
            }
        };
        let c = ClipConfig {
            vocab_size: j.usize("vocab_size")?,
            hidden_size: j.usize("hidden_size")?,
            intermediate_size: j.usize("intermediate_size")?,
            layers: j.usize("num_hidden_layers")?,
            heads: j.usize("num_attention_heads")?,
            max_positions: j.usize_or("max_position_embeddings", 77)?,
            activation,
            layer_norm_eps: j.f64_or("layer_norm_eps", 1e-5)?,
        };
        if c.heads == 0 || !c.hidden_size.is_multiple_of(c.heads) {
            return Err(format!(
                "{}: \"num_attention_heads\": {} heads do not divide hidden_size {}",
                j.path, c.heads, c.hidden_size
            ));
        }
        Ok(c)
    }
}

struct Layer {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct TextEncoder {
    config: ClipConfig,
    tokens: Embedding,
    positions: Embedding,
    layers: Vec<Layer>,
    final_ln: LayerNorm,
}

impl TextEncoder {
    pub fn new(vb: VarBuilder, config: &ClipConfig) -> Result<TextEncoder> {
        let c = config;
        // Hub folders name the weights `text_model.…`; transformers 5 saves them without it.
        let vb = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb
        };
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let emb = vb.pp("embeddings");
        let tokens = candle_nn::embedding(c.vocab_size, h, emb.pp("token_embedding"))?;
        let positions = candle_nn::embedding(c.max_positions, h, emb.pp("position_embedding"))?;
        let layers = (0..c.layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                Ok(Layer {
                    ln1: candle_nn::layer_norm(h, eps, l.pp("layer_norm1"))?,
                    q: candle_nn::linear(h, h, a.pp("q_proj"))?,
                    k: candle_nn::linear(h, h, a.pp("k_proj"))?,
                    v: candle_nn::linear(h, h, a.pp("v_proj"))?,
                    out: candle_nn::linear(h, h, a.pp("out_proj"))?,
                    ln2: candle_nn::layer_norm(h, eps, l.pp("layer_norm2"))?,
                    fc1: candle_nn::linear(h, c.intermediate_size, l.pp("mlp.fc1"))?,
                    fc2: candle_nn::linear(c.intermediate_size, h, l.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let final_ln = candle_nn::layer_norm(h, eps, vb.pp("final_layer_norm"))?;
        Ok(TextEncoder {
            config: c.clone(),
            tokens,
            positions,
            layers,
            final_ln,
        })
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        match self.config.activation {
            Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
        }
    }

    fn attention(&self, l: &Layer, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let heads = self.config.heads;
        let d = h / heads;
        let split = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous()
        };
        let q = split((l.q.forward(x)? * (d as f64).powf(-0.5))?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let dtype = x.dtype();
        // Scores in f32 whatever the weights' dtype (the mask's −∞ stands in f16 too).
        let scores = q
            .to_dtype(DType::F32)?
            .matmul(&k.to_dtype(DType::F32)?.t()?)?
            .broadcast_add(mask)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
        let y = p.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        l.out.forward(&y)
    }

    /// `ids` `[batch, tokens]` (u32) → the last hidden state `[batch, tokens, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        if t > self.config.max_positions {
            candle_core::bail!(
                "{t} tokens; the text encoder has {} positions",
                self.config.max_positions
            );
        }
        let pos = Tensor::arange(0u32, t as u32, ids.device())?;
        let mut x = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&pos)?)?;
        let mask = causal_mask(t, ids.device())?;
        for l in &self.layers {
            let r = x.clone();
            x = (self.attention(l, &l.ln1.forward(&x)?, &mask)? + r)?;
            let r = x.clone();
            let hmid = self.act(&l.fc1.forward(&l.ln2.forward(&x)?)?)?;
            x = (l.fc2.forward(&hmid)? + r)?;
        }
        self.final_ln.forward(&x)
    }
}

fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(m, (t, t), device)?
        .unsqueeze(0)?
        .unsqueeze(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_hides_later_tokens_only() {
        let m = causal_mask(3, &Device::Cpu).unwrap();
        let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v[0..3], [0.0, f32::NEG_INFINITY, f32::NEG_INFINITY]);
        assert_eq!(v[6..9], [0.0, 0.0, 0.0]);
    }
}
