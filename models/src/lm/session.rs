//! A language-model folder ready to talk to: the model, its `tokenizer.json`, its chat
//! template and its `generation_config.json` (stop ids and sampling defaults).

use super::chat::{ChatTemplate, Message};
use super::generate::Sampling;
use super::model::Transformer;
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

/// What `generation_config.json` sets; `None` where it is silent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationDefaults {
    pub stop_tokens: Vec<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub max_new_tokens: Option<usize>,
}

impl GenerationDefaults {
    fn read(dir: &Path, config_eos: &[u32]) -> Result<GenerationDefaults, String> {
        let path = dir.join("generation_config.json");
        let mut d = GenerationDefaults {
            stop_tokens: config_eos.to_vec(),
            ..Default::default()
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(d);
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        match &v["eos_token_id"] {
            serde_json::Value::Array(a) => {
                d.stop_tokens = a
                    .iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect()
            }
            x => {
                if let Some(id) = x.as_u64() {
                    d.stop_tokens = vec![id as u32];
                }
            }
        }
        d.do_sample = v["do_sample"].as_bool();
        d.temperature = v["temperature"].as_f64();
        d.top_k = v["top_k"].as_u64().map(|k| k as usize);
        d.top_p = v["top_p"].as_f64();
        d.min_p = v["min_p"].as_f64();
        d.max_new_tokens = v["max_new_tokens"].as_u64().map(|k| k as usize);
        Ok(d)
    }

    /// The folder's sampling settings (greedy unless it says `do_sample`).
    pub fn sampling(&self) -> Sampling {
        let sample = self.do_sample.unwrap_or(false);
        Sampling {
            temperature: if sample {
                self.temperature.unwrap_or(1.0)
            } else {
                0.0
            },
            top_k: self.top_k.unwrap_or(0),
            top_p: self.top_p.unwrap_or(1.0),
            min_p: self.min_p.unwrap_or(0.0),
            max_new_tokens: self.max_new_tokens.unwrap_or(256),
            stop_tokens: self.stop_tokens.clone(),
            seed: 0,
        }
    }
}

pub struct LanguageModel {
    pub dir: PathBuf,
    pub model: Transformer,
    pub tokenizer: Tokenizer,
    pub template: Option<ChatTemplate>,
    pub defaults: GenerationDefaults,
}

/// A prompt as the model reads it.
pub struct Encoded {
    /// The text after the chat template (the prompt itself without `chat`).
    pub text: String,
    pub ids: Vec<u32>,
}

impl LanguageModel {
    pub fn open(dir: &Path, dtype: DType, device: &Device) -> Result<LanguageModel, String> {
        let tok = dir.join("tokenizer.json");
        if !tok.is_file() {
            return Err(format!(
                "{}: missing; descent reads a model's tokenizer from its tokenizer.json",
                tok.display()
            ));
        }
        let tokenizer =
            Tokenizer::from_file(&tok).map_err(|e| format!("{}: {e}", tok.display()))?;
        let model = super::open(dir, dtype, device)?;
        let template = ChatTemplate::from_folder(dir)?;
        let defaults = GenerationDefaults::read(dir, &model.config.eos_token_ids)?;
        Ok(LanguageModel {
            dir: dir.to_path_buf(),
            model,
            tokenizer,
            template,
            defaults,
        })
    }

    /// `prompt` as token ids: through the chat template (with `system` first) when `chat`,
    /// else as text with the tokenizer's special tokens (a bos, for most).
    pub fn encode(
        &self,
        prompt: &str,
        chat: bool,
        system: Option<&str>,
    ) -> Result<Encoded, String> {
        let text = if chat {
            let t = self.template.as_ref().ok_or_else(|| {
                format!(
                    "{}: no chat template (tokenizer_config.json has no chat_template and there \
                     is no chat_template.jinja); leave out --chat",
                    self.dir.display()
                )
            })?;
            let mut messages = Vec::new();
            if let Some(s) = system {
                messages.push(Message::new("system", s));
            }
            messages.push(Message::new("user", prompt));
            t.render(&messages, true)?
        } else {
            prompt.to_string()
        };
        // A template writes its own special tokens.
        let enc = self
            .tokenizer
            .encode(text.as_str(), !chat)
            .map_err(|e| format!("tokenizing the prompt: {e}"))?;
        let ids = enc.get_ids().to_vec();
        if ids.is_empty() {
            return Err("the prompt is empty after tokenizing".into());
        }
        Ok(Encoded { text, ids })
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| format!("decoding: {e}"))
    }
}
