//! A Hugging Face `config.json` of the decoder-only families descent trains and samples:
//! Llama (Llama 2/3 with `llama3` RoPE scaling, SmolLM2, TinyLlama), Qwen2 (bias on q, k and
//! v) and Qwen3 (RMSNorm on q and k).

use crate::hf_json::Json;
use serde_json::Value;

/// The architectures descent supports, as `config.json`'s `model_type` names them.
pub const FAMILIES: &[&str] = &["llama", "qwen2", "qwen3"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Llama,
    Qwen2,
    Qwen3,
}

/// `rope_scaling` of type `llama3` (Llama 3.1+).
#[derive(Clone, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LmConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<Llama3Scaling>,
    pub max_positions: usize,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2; `attention_bias` elsewhere).
    pub qkv_bias: bool,
    /// RMSNorm over each head of q and k before RoPE (Qwen3).
    pub qk_norm: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl LmConfig {
    /// Reads `config.json`'s text; `file` names it in messages.
    pub fn parse(text: &str, file: &str) -> Result<LmConfig, String> {
        let j = Json::parse(text, file)?;
        let model_type = j.get("model_type").and_then(Value::as_str).unwrap_or("");
        let family = match model_type {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "" => return Err(j.err("model_type", "missing")),
            other => {
                return Err(j.err(
                    "model_type",
                    format!(
                        "{other} is not supported; descent supports {}",
                        FAMILIES.join(", ")
                    ),
                ));
            }
        };
        let act = j
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("silu");
        if act != "silu" {
            return Err(j.err(
                "hidden_act",
                format!("{act}; descent's MLP is SwiGLU (silu)"),
            ));
        }
        let hidden = j.usize("hidden_size")?;
        let heads = j.usize("num_attention_heads")?;
        if heads == 0 {
            return Err(j.err("num_attention_heads", "must be at least 1"));
        }
        let kv_heads = j.opt_usize("num_key_value_heads")?.unwrap_or(heads);
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(j.err(
                "num_key_value_heads",
                format!("{kv_heads} does not divide {heads} attention heads"),
            ));
        }
        let head_dim = match j.opt_usize("head_dim")? {
            Some(d) => d,
            None if hidden.is_multiple_of(heads) => hidden / heads,
            None => {
                return Err(j.err(
                    "num_attention_heads",
                    format!("{heads} heads do not divide hidden_size {hidden}, and no head_dim"),
                ));
            }
        };
        if head_dim % 2 != 0 {
            return Err(j.err("head_dim", format!("{head_dim}: RoPE needs an even size")));
        }
        if j.bool_or("mlp_bias", false)? {
            return Err(j.err("mlp_bias", "true is not supported (no bias in the MLP)"));
        }
        // transformers 5 writes `rope_parameters` (θ inside it) for `rope_theta` and
        // `rope_scaling`.
        let params = j.get("rope_parameters").filter(|p| p.is_object());
        let rope_theta = match params.and_then(|p| p.get("rope_theta")) {
            Some(t) => t
                .as_f64()
                .ok_or_else(|| j.err("rope_parameters", "rope_theta is not a number"))?,
            None => j.f64_or("rope_theta", 10_000.0)?,
        };
        let rope_scaling = match j.get("rope_scaling").or(params) {
            None => None,
            Some(s) => {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match kind {
                    "llama3" => {
                        let f = |k: &str| {
                            s.get(k).and_then(Value::as_f64).ok_or_else(|| {
                                j.err("rope_scaling", format!("llama3 scaling needs {k}"))
                            })
                        };
                        Some(Llama3Scaling {
                            factor: f("factor")?,
                            low_freq_factor: f("low_freq_factor")?,
                            high_freq_factor: f("high_freq_factor")?,
                            original_max_position_embeddings: f(
                                "original_max_position_embeddings",
                            )?,
                        })
                    }
                    "default" => None,
                    other => {
                        return Err(j.err(
                            "rope_scaling",
                            format!("type {other:?} is not supported (llama3 or none)"),
                        ));
                    }
                }
            }
        };
        let eos_token_ids = match j.get("eos_token_id") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect(),
            Some(x) => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        };
        Ok(LmConfig {
            family,
            vocab_size: j.usize("vocab_size")?,
            hidden_size: hidden,
            intermediate_size: j.usize("intermediate_size")?,
            layers: j.usize("num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            rms_norm_eps: j.f64_or("rms_norm_eps", 1e-6)?,
            rope_theta,
            rope_scaling,
            max_positions: j.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: j.bool_or("tie_word_embeddings", false)?,
            qkv_bias: match family {
                Family::Qwen2 => true,
                _ => j.bool_or("attention_bias", false)?,
            },
            qk_norm: family == Family::Qwen3,
            bos_token_id: j.opt_usize("bos_token_id")?.map(|b| b as u32),
            eos_token_ids,
        })
    }

    /// The `config.json` transformers reads for this model (`LlamaForCausalLM`,
    /// `Qwen2ForCausalLM` or `Qwen3ForCausalLM`).
    pub fn to_json(&self) -> Value {
        let (model_type, arch) = match self.family {
            Family::Llama => ("llama", "LlamaForCausalLM"),
            Family::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
            Family::Qwen3 => ("qwen3", "Qwen3ForCausalLM"),
        };
        let mut v = serde_json::json!({
            "architectures": [arch],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_positions,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "float32",
        });
        if self.family != Family::Qwen2 {
            v["attention_bias"] = Value::Bool(self.qkv_bias);
        }
        if let Some(s) = &self.rope_scaling {
            v["rope_scaling"] = serde_json::json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings as u64,
            });
        }
        if let Some(b) = self.bos_token_id {
            v["bos_token_id"] = b.into();
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => v["eos_token_id"] = (*one).into(),
            many => v["eos_token_id"] = many.into(),
        }
        v
    }

    /// RoPE's inverse frequencies, with `llama3` scaling applied where configured.
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim as f64;
        let base: Vec<f64> = (0..self.head_dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d))
            .collect();
        let Some(s) = &self.rope_scaling else {
            return base;
        };
        let old = s.original_max_position_embeddings;
        let (low_wl, high_wl) = (old / s.low_freq_factor, old / s.high_freq_factor);
        base.into_iter()
            .map(|f| {
                let wl = 2.0 * std::f64::consts::PI / f;
                if wl < high_wl {
                    f
                } else if wl > low_wl {
                    f / s.factor
                } else {
                    let smooth =
                        (old / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }

    pub fn param_count(&self) -> u64 {
        let (h, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let (q, kv) = (
            (self.heads * self.head_dim) as u64,
            (self.kv_heads * self.head_dim) as u64,
        );
        let bias = if self.qkv_bias { q + 2 * kv } else { 0 };
        let norms = if self.qk_norm {
            2 * self.head_dim as u64
        } else {
            0
        };
        let layer = h * q + 2 * h * kv + q * h + bias + 3 * h * i + 2 * h + norms;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.layers as u64 * layer + h + head
    }
}
