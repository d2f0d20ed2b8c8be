//! A Stable Diffusion folder's own `config.json` files, read into candle-transformers' public
//! config types (candle's `StableDiffusionConfig` hard-codes the SD 1.5/2.1 values and reads
//! no file). Keys whose values descent cannot honour are errors naming the file and the key;
//! keys that do not change the computation are ignored.

pub use crate::hf_json::Json;
use candle_transformers::models::stable_diffusion::unet_2d::{
    BlockConfig, UNet2DConditionModelConfig,
};
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKLConfig;
use serde_json::Value;

/// The UNet as candle builds it, plus what the pipeline needs around it.
pub struct Unet {
    pub config: UNet2DConditionModelConfig,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Latent height and width.
    pub sample_size: (usize, usize),
    /// Per block: (channels, attention heads, cross-attention?) for the memory estimate.
    pub levels: Vec<(usize, usize, bool)>,
}

pub fn unet(j: &Json) -> Result<Unet, String> {
    j.class_name(&["UNet2DConditionModel"])?;
    // Keys SDXL, ControlNet-style and other variants set; SD 1.x/2.x leave them at these.
    let refused = [
        ("class_embed_type", Value::Null, "class embeddings"),
        (
            "addition_embed_type",
            Value::Null,
            "added embeddings, as SDXL's",
        ),
        ("num_class_embeds", Value::Null, "class embeddings"),
        (
            "time_cond_proj_dim",
            Value::Null,
            "a guidance-distilled time condition",
        ),
        ("encoder_hid_dim", Value::Null, "an encoder projection"),
        (
            "dual_cross_attention",
            Value::Bool(false),
            "dual cross-attention",
        ),
        (
            "only_cross_attention",
            Value::Bool(false),
            "cross-attention only",
        ),
        ("act_fn", Value::from("silu"), "activations other than SiLU"),
        (
            "resnet_time_scale_shift",
            Value::from("default"),
            "scale-shift time conditioning",
        ),
        (
            "time_embedding_type",
            Value::from("positional"),
            "Fourier time embeddings",
        ),
        (
            "conv_in_kernel",
            Value::from(3),
            "input kernels other than 3",
        ),
        (
            "conv_out_kernel",
            Value::from(3),
            "output kernels other than 3",
        ),
        ("attention_type", Value::from("default"), "gated attention"),
        (
            "mid_block_type",
            Value::from("UNetMidBlock2DCrossAttn"),
            "other middle blocks",
        ),
        (
            "reverse_transformer_layers_per_block",
            Value::Null,
            "asymmetric up blocks",
        ),
        (
            "resnet_skip_time_act",
            Value::Bool(false),
            "time activation skips",
        ),
        (
            "resnet_out_scale_factor",
            Value::from(1.0),
            "rescaled residuals",
        ),
        (
            "timestep_post_act",
            Value::Null,
            "a post-activation of the time embedding",
        ),
        (
            "time_embedding_dim",
            Value::Null,
            "a time embedding of another width",
        ),
        (
            "cross_attention_norm",
            Value::Null,
            "a normed cross-attention",
        ),
        (
            "class_embeddings_concat",
            Value::Bool(false),
            "concatenated class embeddings",
        ),
    ];
    for (key, ok, what) in &refused {
        j.only(key, ok, what)?;
    }
    let channels = j.usizes("block_out_channels")?;
    let n = channels.len();
    let down = j.strings("down_block_types")?;
    let up = j.strings("up_block_types")?;
    if down.len() != n || up.len() != n {
        return Err(j.err(
            "down_block_types",
            format!(
                "{} down and {} up block types for {n} block_out_channels",
                down.len(),
                up.len()
            ),
        ));
    }
    let mut cross = Vec::new();
    for (i, d) in down.iter().enumerate() {
        let (is_cross, mirror) = match d.as_str() {
            "CrossAttnDownBlock2D" => (true, "CrossAttnUpBlock2D"),
            "DownBlock2D" => (false, "UpBlock2D"),
            other => {
                return Err(j.err(
                    "down_block_types",
                    format!("{other} is not supported (CrossAttnDownBlock2D or DownBlock2D)"),
                ));
            }
        };
        if up[n - 1 - i] != mirror {
            return Err(j.err(
                "up_block_types",
                format!(
                    "{} mirrors {d}; descent's UNet needs {mirror} there",
                    up[n - 1 - i]
                ),
            ));
        }
        cross.push(is_cross);
    }
    let lpb = match j.get("layers_per_block") {
        Some(Value::Array(_)) => {
            let v = j.usizes("layers_per_block")?;
            if v.iter().any(|&x| x != v[0]) {
                return Err(j.err("layers_per_block", "differs between blocks; not supported"));
            }
            v[0]
        }
        _ => j.usize_or("layers_per_block", 2)?,
    };
    // diffusers names the head count `attention_head_dim` in SD configs (its documented
    // naming mistake); `num_attention_heads`, when set, wins. candle's `attention_head_dim`
    // is the head count too.
    let heads = match j.get("num_attention_heads") {
        Some(_) => j.per_block("num_attention_heads", n, 8)?,
        None => j.per_block("attention_head_dim", n, 8)?,
    };
    let layers = j.per_block("transformer_layers_per_block", n, 1)?;
    let cross_dim = match j.get("cross_attention_dim") {
        Some(Value::Array(_)) => {
            return Err(j.err("cross_attention_dim", "per-block widths are not supported"));
        }
        _ => j.usize_or("cross_attention_dim", 1280)?,
    };
    let groups = j.usize_or("norm_num_groups", 32)?;
    for (i, (&c, &h)) in channels.iter().zip(&heads).enumerate() {
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(j.err(
                "norm_num_groups",
                format!("{groups} groups do not divide block {i}'s {c} channels"),
            ));
        }
        if cross[i] && (h == 0 || !c.is_multiple_of(h)) {
            return Err(j.err(
                "attention_head_dim",
                format!("{h} heads do not divide block {i}'s {c} channels"),
            ));
        }
    }
    let blocks = (0..n)
        .map(|i| BlockConfig {
            out_channels: channels[i],
            use_cross_attn: cross[i].then_some(layers[i]),
            attention_head_dim: heads[i],
        })
        .collect();
    let sample_size = match j.get("sample_size") {
        Some(Value::Array(_)) => {
            let v = j.usizes("sample_size")?;
            if v.len() != 2 {
                return Err(j.err("sample_size", "expected a size or [height, width]"));
            }
            (v[0], v[1])
        }
        _ => {
            let s = j.usize_or("sample_size", 64)?;
            (s, s)
        }
    };
    let config = UNet2DConditionModelConfig {
        center_input_sample: j.bool_or("center_input_sample", false)?,
        flip_sin_to_cos: j.bool_or("flip_sin_to_cos", true)?,
        freq_shift: j.f64_or("freq_shift", 0.0)?,
        blocks,
        layers_per_block: lpb,
        downsample_padding: j.usize_or("downsample_padding", 1)?,
        mid_block_scale_factor: j.f64_or("mid_block_scale_factor", 1.0)?,
        norm_num_groups: groups,
        norm_eps: j.f64_or("norm_eps", 1e-5)?,
        cross_attention_dim: cross_dim,
        sliced_attention_size: None,
        use_linear_projection: j.bool_or("use_linear_projection", false)?,
    };
    Ok(Unet {
        config,
        in_channels: j.usize_or("in_channels", 4)?,
        out_channels: j.usize_or("out_channels", 4)?,
        sample_size,
        levels: (0..n).map(|i| (channels[i], heads[i], cross[i])).collect(),
    })
}

/// The VAE as candle builds it, and how latents are scaled into it.
pub struct Vae {
    pub config: AutoEncoderKLConfig,
    pub in_channels: usize,
    pub out_channels: usize,
    pub scaling_factor: f64,
    /// Image pixels per latent pixel: 2^(blocks − 1).
    pub scale: usize,
}

pub fn vae(j: &Json) -> Result<Vae, String> {
    j.class_name(&["AutoencoderKL"])?;
    j.only("shift_factor", &Value::Null, "shifted latents, as SD3's")?;
    j.only("latents_mean", &Value::Null, "normalised latents")?;
    j.only(
        "act_fn",
        &Value::from("silu"),
        "activations other than SiLU",
    )?;
    j.only(
        "mid_block_add_attention",
        &Value::Bool(true),
        "a middle block without attention",
    )?;
    let channels = j.usizes("block_out_channels")?;
    for key in ["down_block_types", "up_block_types"] {
        let want = if key.starts_with("down") {
            "DownEncoderBlock2D"
        } else {
            "UpDecoderBlock2D"
        };
        let types = j.strings(key)?;
        if types.len() != channels.len() || types.iter().any(|t| t != want) {
            return Err(j.err(
                key,
                format!("expected {want} for each of the {} blocks", channels.len()),
            ));
        }
    }
    let groups = j.usize_or("norm_num_groups", 32)?;
    if let Some(c) = channels
        .iter()
        .find(|&&c| groups == 0 || !c.is_multiple_of(groups))
    {
        return Err(j.err(
            "norm_num_groups",
            format!("{groups} groups do not divide {c} channels"),
        ));
    }
    Ok(Vae {
        scale: 1 << (channels.len() - 1),
        config: AutoEncoderKLConfig {
            block_out_channels: channels,
            layers_per_block: j.usize_or("layers_per_block", 1)?,
            latent_channels: j.usize_or("latent_channels", 4)?,
            norm_num_groups: groups,
            use_quant_conv: j.bool_or("use_quant_conv", true)?,
            use_post_quant_conv: j.bool_or("use_post_quant_conv", true)?,
        },
        in_channels: j.usize_or("in_channels", 3)?,
        out_channels: j.usize_or("out_channels", 3)?,
        scaling_factor: j.f64_or("scaling_factor", 0.18215)?,
    })
}
