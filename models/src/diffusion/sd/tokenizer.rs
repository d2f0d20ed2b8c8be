//! The CLIP tokenizer from a pipeline's own `tokenizer/` folder: `tokenizer.json` when it has
//! one, else `vocab.json` + `merges.txt` assembled as transformers' CLIPTokenizerFast is (NFC,
//! whitespace collapsed, lower case; CLIP's word pattern; byte-level BPE with `</w>` word
//! ends). Prompts are cut to the model's length and padded as diffusers' pipelines do:
//! `[bos] tokens… [eos] pad…`.

use crate::hf_json::special_token;
use std::path::Path;
use tokenizers::Tokenizer;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Lowercase, NFC, Replace, Sequence as Normalizers};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizers;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

/// CLIP's word pattern (transformers' CLIPTokenizer).
const WORDS: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

pub struct ClipTokenizer {
    inner: Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
    /// Tokens per prompt, bos and eos included.
    pub max_len: usize,
}

/// A prompt as the text encoder takes it.
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Prompt tokens cut off to fit `max_len`.
    pub truncated: usize,
}

fn build_from_vocab(dir: &Path, unk: &str) -> Result<Tokenizer, String> {
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    for f in [&vocab, &merges] {
        if !f.is_file() {
            return Err(format!(
                "{}: missing (a CLIP tokenizer needs tokenizer.json, or vocab.json and merges.txt)",
                f.display()
            ));
        }
    }
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .end_of_word_suffix("</w>".into())
        .unk_token(unk.into())
        .build()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tok = Tokenizer::new(bpe);
    let ws = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s+".into()),
        " ",
    )
    .map_err(|e| e.to_string())?;
    tok.with_normalizer(Some(Normalizers::new(vec![
        NormalizerWrapper::from(NFC),
        NormalizerWrapper::from(ws),
        NormalizerWrapper::from(Lowercase),
    ])))
    .map_err(|e| e.to_string())?;
    let split = Split::new(
        SplitPattern::Regex(WORDS.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| e.to_string())?;
    tok.with_pre_tokenizer(Some(PreTokenizers::new(vec![
        PreTokenizerWrapper::from(split),
        PreTokenizerWrapper::from(ByteLevel::new(false, false, false)),
    ])));
    Ok(tok)
}

impl ClipTokenizer {
    /// `dir` is the pipeline's `tokenizer/`; `max_positions` the text encoder's.
    pub fn open(dir: &Path, max_positions: usize) -> Result<ClipTokenizer, String> {
        let cfg_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", cfg_path.display()))?
            }
            Err(_) => serde_json::Value::Null,
        };
        let bos = special_token(&config, "bos_token").unwrap_or("<|startoftext|>".into());
        let eos = special_token(&config, "eos_token").unwrap_or("<|endoftext|>".into());
        let unk = special_token(&config, "unk_token").unwrap_or(eos.clone());
        // SD 1.x pads with the eos token, SD 2.x with "!".
        let pad = special_token(&config, "pad_token").unwrap_or(eos.clone());
        let json = dir.join("tokenizer.json");
        let inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| format!("{}: {e}", json.display()))?
        } else {
            build_from_vocab(dir, &unk)?
        };
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .ok_or_else(|| format!("{}: the vocabulary has no {t:?} token", dir.display()))
        };
        let max_len = config
            .get("model_max_length")
            .and_then(|v| v.as_u64())
            .map_or(max_positions, |m| (m as usize).min(max_positions));
        if max_len < 2 {
            return Err(format!(
                "{}: model_max_length {max_len} leaves no room for a prompt",
                cfg_path.display()
            ));
        }
        Ok(ClipTokenizer {
            bos: id(&bos)?,
            eos: id(&eos)?,
            pad: id(&pad)?,
            inner,
            max_len,
        })
    }

    pub fn encode(&self, prompt: &str) -> Result<Tokens, String> {
        let enc = self
            .inner
            .encode(prompt, false)
            .map_err(|e| format!("tokenizing {prompt:?}: {e}"))?;
        let body = enc.get_ids();
        let room = self.max_len - 2;
        let kept = body.len().min(room);
        let mut ids = Vec::with_capacity(self.max_len);
        ids.push(self.bos);
        ids.extend_from_slice(&body[..kept]);
        ids.push(self.eos);
        ids.resize(self.max_len, self.pad);
        Ok(Tokens {
            ids,
            truncated: body.len() - kept,
        })
    }
}
