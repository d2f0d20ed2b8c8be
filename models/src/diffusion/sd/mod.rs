//! Stable Diffusion 1.x/2.x pipelines in diffusers' layout (as `descent pull` stores them):
//! the UNet (our host one for f32 on the CPU, candle-transformers' elsewhere), the VAE of
//! candle-transformers and our CLIP text encoder, each built from its own
//! folder's `config.json`, the CLIP tokenizer from `tokenizer/`, and descent's schedulers and
//! guided sampler. Inference only.

pub mod clip;
pub mod configs;
pub mod tiny;
pub mod tokenizer;
pub mod unet_host;

use super::sample::Model;
use candle_core::{DType, Device, Result as CResult, Tensor};
use candle_transformers::models::stable_diffusion::unet_2d::UNet2DConditionModel;
use candle_transformers::models::stable_diffusion::vae::AutoEncoderKL;
use configs::Json;
use std::path::{Path, PathBuf};

/// The pipeline class descent samples.
pub const PIPELINE_CLASS: &str = "StableDiffusionPipeline";

/// What a pipeline folder holds, read from its configs and file headers only.
pub struct Inspected {
    pub dir: PathBuf,
    pub unet: configs::Unet,
    pub vae: configs::Vae,
    pub clip: clip::ClipConfig,
    /// Weight files per component (unet, vae, text_encoder).
    pub files: [Vec<PathBuf>; 3],
    /// Parameters per component, from the safetensors headers.
    pub params: [u64; 3],
}

impl Inspected {
    /// Latent shape `[channels, h, w]`.
    pub fn latent_shape(&self) -> Vec<usize> {
        let (h, w) = self.unet.sample_size;
        vec![self.unet.in_channels, h, w]
    }

    /// Image shape `[channels, H, W]`.
    pub fn image_shape(&self) -> Vec<usize> {
        let (h, w) = self.unet.sample_size;
        let s = self.vae.scale;
        vec![self.vae.out_channels, h * s, w * s]
    }

    pub fn param_count(&self) -> u64 {
        self.params.iter().sum()
    }

    /// Peak elements of one UNet forward row: the skip connections kept for the up path,
    /// the working tensors of the widest level, and one self-attention score matrix (the
    /// largest, at the finest cross-attention level).
    pub fn activation_elems(&self) -> u64 {
        let (h, w) = self.unet.sample_size;
        let lpb = self.unet.config.layers_per_block as u64;
        let mut total = 0u64;
        let mut attn = 0u64;
        let mut widest = 0u64;
        for (level, &(c, heads, cross)) in self.unet.levels.iter().enumerate() {
            let hw = ((h >> level).max(1) * (w >> level).max(1)) as u64;
            total += c as u64 * hw * (lpb + 1);
            widest = widest.max(c as u64 * hw);
            if cross {
                attn = attn.max(heads as u64 * hw * hw);
            }
        }
        total + 8 * widest + attn
    }
}

/// Whether `dir` is a Stable Diffusion pipeline folder (by its `model_index.json`).
pub fn is_pipeline(dir: &Path) -> bool {
    Json::read(&dir.join("model_index.json"))
        .is_ok_and(|j| j.value.get("_class_name").and_then(|c| c.as_str()) == Some(PIPELINE_CLASS))
}

pub fn inspect(dir: &Path) -> Result<Inspected, String> {
    let need = |sub: &str| -> Result<PathBuf, String> {
        let p = dir.join(sub);
        if p.is_dir() {
            Ok(p)
        } else {
            Err(format!(
                "{}: missing; a Stable Diffusion pipeline has unet/, vae/, text_encoder/, \
                 tokenizer/ and scheduler/",
                p.display()
            ))
        }
    };
    let (u, v, t) = (need("unet")?, need("vae")?, need("text_encoder")?);
    need("tokenizer")?;
    need("scheduler")?;
    let unet = configs::unet(&Json::read(&u.join("config.json"))?)?;
    let vae = configs::vae(&Json::read(&v.join("config.json"))?)?;
    let clip = clip::ClipConfig::read(&Json::read(&t.join("config.json"))?)?;
    if unet.config.cross_attention_dim != clip.hidden_size {
        return Err(format!(
            "{}: cross_attention_dim {} but the text encoder's hidden_size is {}",
            u.join("config.json").display(),
            unet.config.cross_attention_dim,
            clip.hidden_size
        ));
    }
    if unet.in_channels != vae.config.latent_channels || unet.out_channels != unet.in_channels {
        return Err(format!(
            "{}: in/out channels {}/{} but the VAE has {} latent channels",
            u.join("config.json").display(),
            unet.in_channels,
            unet.out_channels,
            vae.config.latent_channels
        ));
    }
    let files = [
        crate::weights::files(&u, "diffusion_pytorch_model")?,
        crate::weights::files(&v, "diffusion_pytorch_model")?,
        crate::weights::files(&t, "model")?,
    ];
    let mut params = [0u64; 3];
    for (k, fs) in files.iter().enumerate() {
        for f in fs {
            params[k] += crate::weights::header_params(f)?;
        }
    }
    Ok(Inspected {
        dir: dir.to_path_buf(),
        unet,
        vae,
        clip,
        files,
        params,
    })
}

/// Which UNet implementation evaluates the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnetKind {
    /// [`unet_host::HostUnet`]: f32 on the CPU only.
    Host,
    /// candle-transformers' `UNet2DConditionModel`: any device and dtype.
    Candle,
}

impl UnetKind {
    /// The host UNet where it applies (f32 on the CPU), candle's elsewhere.
    pub fn default_for(dtype: DType, device: &Device) -> UnetKind {
        if device.is_cpu() && dtype == DType::F32 {
            UnetKind::Host
        } else {
            UnetKind::Candle
        }
    }
}

enum UnetImpl {
    Host(Box<unet_host::HostUnet>),
    Candle(Box<UNet2DConditionModel>),
}

/// A pipeline loaded for sampling.
pub struct Pipeline {
    pub info: Inspected,
    unet: UnetImpl,
    vae: AutoEncoderKL,
    text: clip::TextEncoder,
    tokenizer: tokenizer::ClipTokenizer,
    pub dtype: DType,
    device: Device,
}

/// The weights' dtype on `device`: f32 on the CPU (candle's CPU half-precision kernels are
/// slow and diffusers samples in f32 there too), f16 on a GPU.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    }
}

impl Pipeline {
    pub fn load(info: Inspected, dtype: DType, device: &Device) -> Result<Pipeline, String> {
        Pipeline::load_with(info, dtype, device, UnetKind::default_for(dtype, device))
    }

    /// [`Pipeline::load`] with the UNet implementation chosen (for comparing the two).
    pub fn load_with(
        info: Inspected,
        dtype: DType,
        device: &Device,
        kind: UnetKind,
    ) -> Result<Pipeline, String> {
        let ctx = |f: &[PathBuf], e: candle_core::Error| {
            format!(
                "{}: {e}",
                f.first().map_or(String::new(), |p| p.display().to_string())
            )
        };
        let unet = match kind {
            UnetKind::Host => {
                if kind != UnetKind::default_for(dtype, device) {
                    return Err("the host UNet runs in f32 on the CPU only".into());
                }
                UnetImpl::Host(Box::new(unet_host::HostUnet::load(
                    &info.unet,
                    &info.files[0],
                )?))
            }
            UnetKind::Candle => {
                let vb = crate::weights::var_builder(&info.files[0], dtype, device)?;
                let unet = UNet2DConditionModel::new(
                    vb,
                    info.unet.in_channels,
                    info.unet.out_channels,
                    false,
                    info.unet.config.clone(),
                )
                .map_err(|e| ctx(&info.files[0], e))?;
                UnetImpl::Candle(Box::new(unet))
            }
        };
        let vb = crate::weights::var_builder(&info.files[1], dtype, device)?;
        let vae = AutoEncoderKL::new(
            vb,
            info.vae.in_channels,
            info.vae.out_channels,
            info.vae.config.clone(),
        )
        .map_err(|e| ctx(&info.files[1], e))?;
        let vb = crate::weights::var_builder(&info.files[2], dtype, device)?;
        let text = clip::TextEncoder::new(vb, &info.clip).map_err(|e| ctx(&info.files[2], e))?;
        let tokenizer =
            tokenizer::ClipTokenizer::open(&info.dir.join("tokenizer"), info.clip.max_positions)?;
        Ok(Pipeline {
            info,
            unet,
            vae,
            text,
            tokenizer,
            dtype,
            device: device.clone(),
        })
    }

    /// The prompt and the negative prompt as the UNet's context, `[2, tokens, hidden]`, and
    /// how many tokens each lost to the tokenizer's limit.
    pub fn encode(&self, prompt: &str, negative: &str) -> Result<Prompted<'_>, String> {
        let (p, n) = (
            self.tokenizer.encode(prompt)?,
            self.tokenizer.encode(negative)?,
        );
        let ids: Vec<u32> = p.ids.iter().chain(&n.ids).copied().collect();
        let len = p.ids.len();
        let embeds = Tensor::from_vec(ids.clone(), (2, len), &self.device)
            .and_then(|t| self.text.forward(&t))
            .map_err(|e| format!("the text encoder: {e}"))?;
        Ok(Prompted {
            pipeline: self,
            embeds,
            shape: self.info.latent_shape(),
            tokens: [p.ids, n.ids],
            truncated: [p.truncated, n.truncated],
            max_tokens: self.tokenizer.max_len,
        })
    }

    /// Latents `[n, c, h, w]` (flat, f32) → images `[n, 3, H, W]` in [−1, 1] (flat), one
    /// sample at a time to bound the VAE's memory.
    pub fn decode(&self, latents: &[f32]) -> CResult<Vec<f32>> {
        let shape = self.info.latent_shape();
        let f: usize = shape.iter().product();
        let mut out = Vec::new();
        for l in latents.chunks(f) {
            let x = Tensor::from_vec(l.to_vec(), (1, shape[0], shape[1], shape[2]), &self.device)?;
            let x = (x / self.info.vae.scaling_factor)?.to_dtype(self.dtype)?;
            let img = self
                .vae
                .decode(&x)?
                .to_dtype(DType::F32)?
                .clamp(-1f32, 1f32)?;
            out.extend(img.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

/// A pipeline with its prompt encoded: the [`Model`] the sampler calls. Class 0 is the
/// prompt, class 1 (the null class) the negative prompt.
pub struct Prompted<'a> {
    pipeline: &'a Pipeline,
    embeds: Tensor,
    shape: Vec<usize>,
    /// Token ids of the prompt and the negative prompt, padded.
    pub tokens: [Vec<u32>; 2],
    pub truncated: [usize; 2],
    pub max_tokens: usize,
}

impl Prompted<'_> {
    /// The context rows: the prompt's, then the negative prompt's.
    pub fn embeddings(&self) -> &Tensor {
        &self.embeds
    }
}

impl Model for Prompted<'_> {
    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }
    fn null_class(&self) -> u32 {
        1
    }
    fn predict(&self, x: &Tensor, t: f64, class: &[u32]) -> CResult<Tensor> {
        let idx = Tensor::from_vec(class.to_vec(), class.len(), &self.pipeline.device)?;
        let ctx = self.embeds.index_select(&idx, 0)?;
        match &self.pipeline.unet {
            UnetImpl::Host(u) => {
                let (b, _, h, w) = x.dims4()?;
                let xs = x.flatten_all()?.to_vec1::<f32>()?;
                let cs = ctx.flatten_all()?.to_vec1::<f32>()?;
                let out = u.forward(&xs, b, h, w, t, &cs);
                Tensor::from_vec(out, x.dims(), x.device())
            }
            UnetImpl::Candle(u) => {
                let x = x.to_dtype(self.pipeline.dtype)?;
                u.forward(&x, t, &ctx)?.to_dtype(DType::F32)
            }
        }
    }
    fn device(&self) -> &Device {
        &self.pipeline.device
    }
}
