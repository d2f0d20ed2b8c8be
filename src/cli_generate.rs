//! `descent generate`: continue a prompt with a language model (a Hugging Face folder, a
//! hub repository in the cache, or a run's checkpoint), streaming the tokens.

use crate::workspace::Workspace;
use crate::{demo, logging};
use anyhow::{Context, bail};
use clap::Args;
use descent_models::device::DeviceSpec;
use descent_models::lm::generate::{self, Generated};
use descent_models::lm::session::LanguageModel;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A model folder (config.json, model.safetensors, tokenizer.json) or hub:ORG/NAME
    pub model: String,
    /// The text to continue (with --chat: the user's message)
    #[arg(long)]
    pub prompt: String,
    /// Apply the model's chat template (tokenizer_config.json's chat_template)
    #[arg(long)]
    pub chat: bool,
    /// A system message before the prompt (with --chat)
    #[arg(long)]
    pub system: Option<String>,
    /// Completions of the prompt, generated as one batch (row i seeded SEED + i)
    #[arg(short, default_value_t = 1)]
    pub n: usize,
    /// 0: greedy (default: generation_config.json's, else greedy)
    #[arg(long, allow_hyphen_values = true)]
    pub temperature: Option<f64>,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long)]
    pub min_p: Option<f64>,
    /// New tokens at most (default: generation_config.json's, else 256)
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Stop at this text too (repeatable); the model's stop tokens always stop
    #[arg(long)]
    pub stop: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Workspace folder (for hub:ORG/NAME's cache and its device; default: as for the TUI)
    #[arg(long, short)]
    pub workspace: Option<PathBuf>,
    /// auto, cpu, cuda, cuda:N or metal (default: the workspace's device with -w or a hub
    /// model, else auto)
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Print every completion as JSON (tokens, log-probabilities, entropies) when done
    #[arg(long)]
    pub json: bool,
}

/// Refuses a model whose weights, KV cache and logits for `-n` rows would not fit, before
/// anything is loaded (an allocation that fails aborts the process).
fn check_memory(
    dir: &Path,
    dtype: candle_core::DType,
    chosen: &descent_models::device::Chosen,
    args: &GenerateArgs,
) -> anyhow::Result<()> {
    let config = descent_models::lm::read_config(dir).map_err(anyhow::Error::msg)?;
    let c = &config;
    // Per row: keys and values of every layer at every position, one position's hidden
    // states, and the logits (f32).
    let kv = (c.layers * 2 * c.kv_heads * c.head_dim * c.max_positions) as u64;
    let per_row = kv + (4 * c.hidden_size + c.intermediate_size + 2 * c.vocab_size) as u64;
    let fp = descent_models::memory::sampling(
        c.param_count(),
        dtype.size_in_bytes() as u64,
        per_row,
        0,
        args.n,
    );
    if let Ok(avail) = crate::runs::memory::Available::now(&chosen.label)
        && let Some(need) = crate::runs::memory::shortfall(&fp, &avail)
    {
        bail!(
            "{}: generating {} completion(s) would need {need}; ask for fewer with -n or use \
             a bigger device",
            dir.display(),
            args.n
        );
    }
    Ok(())
}

/// A completion's text, and where a stop string cut it.
fn cut_at_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    logging::init_cli();
    let ws = if args.model.starts_with("hub:") || args.workspace.is_some() {
        let root = demo::resolve_workspace(args.workspace.as_deref())?;
        Some(Workspace::open(&root)?)
    } else {
        None
    };
    let dir = match &ws {
        Some(ws) if args.model.starts_with("hub:") => {
            let cache = ws.settings.hub_cache_path(&ws.root);
            crate::sources::resolve(
                &args.model,
                crate::sources::RepoKind::Model,
                cache.as_deref(),
            )?
        }
        _ => PathBuf::from(&args.model),
    };
    if args.n == 0 || args.n > 256 {
        bail!("-n {}: between 1 and 256 completions", args.n);
    }
    // SAFETY: before any thread pool exists.
    unsafe { descent_models::configure_cpu_threads(0) };
    let spec = args
        .device
        .or(ws.as_ref().map(|w| w.settings.device))
        .unwrap_or(DeviceSpec::Auto);
    let chosen = descent_models::device::resolve(spec).map_err(anyhow::Error::msg)?;
    let dtype = descent_models::lm::default_dtype(&chosen.device);
    check_memory(&dir, dtype, &chosen, &args)?;
    let lm = LanguageModel::open(&dir, dtype, &chosen.device).map_err(anyhow::Error::msg)?;
    let enc = lm
        .encode(&args.prompt, args.chat, args.system.as_deref())
        .map_err(anyhow::Error::msg)?;
    let mut s = lm.defaults.sampling();
    if let Some(t) = args.temperature {
        if !(t.is_finite() && t >= 0.0) {
            bail!("--temperature {t}: must be zero (greedy) or positive");
        }
        s.temperature = t;
    }
    s.top_k = args.top_k.unwrap_or(s.top_k);
    s.top_p = args.top_p.unwrap_or(s.top_p);
    s.min_p = args.min_p.unwrap_or(s.min_p);
    s.max_new_tokens = args.max_new_tokens.unwrap_or(s.max_new_tokens);
    s.seed = args.seed;
    if !(0.0..=1.0).contains(&s.top_p) || !(0.0..=1.0).contains(&s.min_p) {
        bail!("--top-p and --min-p lie in [0, 1]");
    }
    let limit = lm.model.config.max_positions;
    if args.max_new_tokens.is_none() {
        // The default budget stops where the context does.
        s.max_new_tokens = s.max_new_tokens.min(limit.saturating_sub(enc.ids.len()));
    }
    if enc.ids.len() >= limit {
        bail!(
            "the prompt is {} tokens; the model has {limit} positions",
            enc.ids.len()
        );
    }
    if enc.ids.len() + s.max_new_tokens > limit {
        bail!(
            "the prompt is {} tokens and --max-new-tokens {}; the model has {limit} positions",
            enc.ids.len(),
            s.max_new_tokens
        );
    }
    let prompts = vec![enc.ids.clone(); args.n];
    let stream = args.n == 1 && !args.json;
    let mut tokens: Vec<Vec<u32>> = vec![Vec::new(); args.n];
    let mut shown = 0usize;
    let mut out = std::io::stdout();
    let pad = lm.defaults.stop_tokens.first().copied().unwrap_or(0);
    let results: Vec<Generated> = generate::generate(&lm.model, &prompts, &s, pad, &mut |r, t| {
        tokens[r].push(t);
        if args.stop.is_empty() && !stream {
            return false;
        }
        let text = lm.decode(&tokens[r]).unwrap_or_default();
        let cut = cut_at_stop(&text, &args.stop);
        if stream {
            let end = cut.unwrap_or(text.len());
            // Print what is settled: a partial UTF-8 character decodes to U+FFFD.
            if end > shown && text.is_char_boundary(end) && !text[..end].ends_with('\u{FFFD}') {
                let _ = write!(out, "{}", &text[shown..end]);
                let _ = out.flush();
                shown = end;
            }
        }
        cut.is_some()
    })
    .context("generating")?;
    let completions: Vec<String> = results
        .iter()
        .map(|g| {
            let text = lm.decode(&g.tokens).unwrap_or_default();
            match cut_at_stop(&text, &args.stop) {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        })
        .collect();
    if args.json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .zip(&completions)
            .map(|(g, text)| {
                serde_json::json!({
                    "completion": text,
                    "tokens": g.tokens,
                    "logprobs": g.logprobs,
                    "entropies": g.entropies,
                    "stopped": g.stopped,
                })
            })
            .collect();
        let report = serde_json::json!({
            "model": dir.display().to_string(),
            "prompt": enc.text,
            "prompt_tokens": enc.ids.len(),
            "completions": rows,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if stream {
        println!();
    } else {
        for (i, c) in completions.iter().enumerate() {
            println!("--- {} ---\n{c}", i + 1);
        }
    }
    Ok(ExitCode::SUCCESS)
}
