//! `experiments/*.toml`: one experiment per file.
//!
//! The schema follows DESIGN.md. Keys that a running experiment may change live are listed in
//! [`Experiment::HOT_KEYS`]; an edit to any other key needs a restart.

use super::grpo::{D3sConfig, GrpoConfig};
use super::probes::{ProbesConfig, SubsetConfig};
use super::sweep::SweepConfig;
use super::{ConfigError, DeviceSpec, Violation};
pub use descent_models::diffusion::schedule::{BetaSchedule, Prediction, SamplerKind};
pub use descent_models::nn::{Activation, Arch};
pub use descent_models::optim::OptimName;
pub use descent_models::optim::schedule::ScheduleName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Defaults to the file name without `.toml`.
    #[serde(default)]
    pub name: Option<String>,
    pub kind: Kind,
    #[serde(default)]
    pub seed: u64,
    /// Overrides the workspace default device.
    #[serde(default)]
    pub device: Option<DeviceSpec>,
    pub data: DataConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    pub train: TrainConfig,
    /// The noise process of a `kind = "diffusion"` experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffusion: Option<DiffusionConfig>,
    /// The language model of a `kind = "pretrain"` experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lm: Option<LmConfig>,
    /// The fine-tuning of a `kind = "grpo"` experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpo: Option<GrpoConfig>,
    /// D³S down-sampling of a `kind = "grpo"` experiment (absent: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d3s: Option<D3sConfig>,
    /// The gradient probes of a supervised run (always written out, defaults included, so a
    /// run's `config.toml` says what it probed and live edits compare like with like).
    #[serde(default)]
    pub probes: ProbesConfig,
    /// Many runs of this experiment with some keys set otherwise (`descent sweep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepConfig>,
}

/// `[lm]`: the language model a `kind = "pretrain"` experiment trains. The shape keys are
/// for a model from scratch; with `from`, the folder's `config.json` sets the shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LmConfig {
    /// A Hugging Face folder (a path from the workspace, or `hub:ORG/NAME`) to go on
    /// training, with its tokenizer.
    pub from: Option<String>,
    pub hidden_size: Option<usize>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    /// Key/value heads (grouped-query attention); defaults to `heads`.
    pub kv_heads: Option<usize>,
    /// The MLP's width; defaults to 8/3 × hidden_size rounded up to a multiple of 32.
    pub intermediate_size: Option<usize>,
    /// The most tokens the BPE tokenizer trained on the corpus may have.
    pub vocab_size: Option<usize>,
    pub rope_theta: Option<f64>,
    pub tie_embeddings: Option<bool>,
    /// Tokens of one training sequence at most.
    pub context: usize,
    /// Read prompts of prompt/completion pairs through the chat template as a user turn.
    pub chat: bool,
    /// Held-out prompts answered greedily at each evaluation, for the exact-match accuracy.
    pub eval_problems: usize,
}

impl Default for LmConfig {
    fn default() -> Self {
        LmConfig {
            from: None,
            hidden_size: None,
            layers: None,
            heads: None,
            kv_heads: None,
            intermediate_size: None,
            vocab_size: None,
            rope_theta: None,
            tie_embeddings: None,
            context: 64,
            chat: true,
            eval_problems: 200,
        }
    }
}

impl LmConfig {
    pub const HIDDEN: usize = 128;
    pub const LAYERS: usize = 4;
    pub const HEADS: usize = 4;
    pub const VOCAB: usize = 512;

    pub fn hidden(&self) -> usize {
        self.hidden_size.unwrap_or(Self::HIDDEN)
    }
    pub fn heads(&self) -> usize {
        self.heads.unwrap_or(Self::HEADS)
    }
    pub fn kv(&self) -> usize {
        self.kv_heads.unwrap_or(self.heads())
    }
    pub fn intermediate(&self) -> usize {
        self.intermediate_size
            .unwrap_or_else(|| (self.hidden() * 8 / 3).div_ceil(32) * 32)
    }
    /// The shape keys set, which `from` leaves no room for.
    fn shape_keys(&self) -> Vec<&'static str> {
        [
            ("hidden_size", self.hidden_size.is_some()),
            ("layers", self.layers.is_some()),
            ("heads", self.heads.is_some()),
            ("kv_heads", self.kv_heads.is_some()),
            ("intermediate_size", self.intermediate_size.is_some()),
            ("vocab_size", self.vocab_size.is_some()),
            ("rope_theta", self.rope_theta.is_some()),
            ("tie_embeddings", self.tie_embeddings.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// `[diffusion]`: the noise process a denoiser is trained on, with diffusers' names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiffusionConfig {
    pub timesteps: usize,
    pub beta_schedule: BetaSchedule,
    pub beta_start: f64,
    pub beta_end: f64,
    pub prediction: Prediction,
    /// Probability that a training example's class is replaced by the null class (what CFG
    /// needs to have an unconditional prediction).
    pub label_dropout: f64,
    /// Width of the timestep and class embeddings.
    pub embed_dim: usize,
    /// The sampler saved in the scheduler config (the default for `descent sample`).
    pub sampler: SamplerKind,
    /// Clip predicted x0 to [−1, 1] while sampling (saved in the scheduler config). Off by
    /// default: with DDIM, clipping a background that sits at −1 only ever raises it, and the
    /// digits' backgrounds came out grey enough to fool a classifier (BENCHMARKS.md).
    pub clip_sample: bool,
}

impl Default for DiffusionConfig {
    fn default() -> Self {
        DiffusionConfig {
            timesteps: 1000,
            beta_schedule: BetaSchedule::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            prediction: Prediction::Epsilon,
            label_dropout: 0.1,
            embed_dim: 64,
            sampler: SamplerKind::Ddim,
            clip_sample: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Supervised,
    Diffusion,
    Pretrain,
    Grpo,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Supervised => "supervised",
            Kind::Diffusion => "diffusion",
            Kind::Pretrain => "pretrain",
            Kind::Grpo => "grpo",
        })
    }
}

/// Where training data comes from: `builtin:NAME`, `hub:ORG/NAME` or a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataSource {
    Builtin(String),
    Hub(String),
    /// Relative paths are relative to the workspace's data folder.
    Path(String),
}

impl TryFrom<String> for DataSource {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ident = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if let Some(name) = s.strip_prefix("builtin:") {
            return ident(name)
                .then(|| DataSource::Builtin(name.into()))
                .ok_or_else(|| format!("bad builtin dataset name {name:?}"));
        }
        if let Some(repo) = s.strip_prefix("hub:") {
            return match repo.split_once('/') {
                Some((org, name)) if ident(org) && ident(name) => Ok(DataSource::Hub(repo.into())),
                _ => Err(format!(
                    "bad hub repository {repo:?}; expected hub:ORG/NAME"
                )),
            };
        }
        if s.trim().is_empty() {
            return Err("empty data source; expected builtin:NAME, hub:ORG/NAME or a path".into());
        }
        Ok(DataSource::Path(s))
    }
}

impl From<DataSource> for String {
    fn from(d: DataSource) -> String {
        d.to_string()
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Builtin(n) => write!(f, "builtin:{n}"),
            DataSource::Hub(r) => write!(f, "hub:{r}"),
            DataSource::Path(p) => f.write_str(p),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// Target column, for table files.
    #[serde(default)]
    pub target: Option<String>,
    /// Parameters of a builtin dataset, e.g. `{ samples = 2000, noise = 0.2 }`.
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Language models (pretrain, grpo): the seed of the generated corpus or task and of the
    /// held-out split, when it should differ from the experiment's (a GRPO run at another
    /// seed that keeps its base model's held-out problems).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Supervised runs: train on part of the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetConfig>,
    /// Classification: permute the labels among the examples (seeded by the experiment's
    /// seed), so nothing but memorisation can fit them — the control of the coherence and
    /// generalisation experiments.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shuffle_labels: bool,
}

fn default_val_fraction() -> f64 {
    0.2
}
fn default_batch_size() -> usize {
    128
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Hidden layer widths (MLP) or dense widths after the convolutions (CNN).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Convolution channels, one layer each (CNN only).
    #[serde(default)]
    pub channels: Vec<usize>,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default)]
    pub layer_norm: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    pub name: OptimName,
    pub lr: f64,
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient L2 norm to this value.
    pub clip_grad_norm: Option<f64>,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            name: OptimName::Adamw,
            lr: 1e-3,
            weight_decay: 0.0,
            momentum: 0.0,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_grad_norm: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub name: ScheduleName,
    pub warmup_steps: u64,
    /// For `refined`: the finished run whose gradient norms shape the schedule.
    pub from_run: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: u64,
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// How many checkpoints to keep; older ones are deleted.
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: usize,
}

fn default_eval_every() -> u64 {
    100
}
fn default_checkpoint_every() -> u64 {
    500
}
fn default_keep_checkpoints() -> usize {
    3
}

impl Experiment {
    /// Keys a running experiment picks up live; other edits need a restart.
    pub const HOT_KEYS: &'static [&'static str] = &[
        "optim.lr",
        "train.eval_every",
        "train.checkpoint_every",
        "train.steps",
    ];
    /// Tables whose every key is hot.
    pub const HOT_TABLES: &'static [&'static str] = &["probes."];

    /// Whether a running experiment picks up an edit of the dotted `key` live.
    pub fn is_hot(key: &str) -> bool {
        Experiment::HOT_KEYS.contains(&key)
            || Experiment::HOT_TABLES.iter().any(|t| key.starts_with(t))
    }

    /// Parses and validates one experiment file; `path`'s stem is the default name.
    pub fn parse(path: &Path, text: &str) -> Result<Experiment, Vec<ConfigError>> {
        if text.trim().is_empty() {
            return Err(vec![ConfigError::whole_file(
                path,
                "empty file; an experiment needs at least `kind`, [data], [model] and [train]",
            )]);
        }
        let mut exp: Experiment = super::parse(path, text, Experiment::validate)?;
        if exp.name.is_none() {
            exp.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        let errors = super::sweep::check(&exp, path, text);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(exp)
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    pub(crate) fn validate(&self) -> Vec<Violation> {
        let mut v = Vec::new();
        let mut rule = |ok: bool, path: &[&'static str], msg: &str| {
            if !ok {
                v.push(Violation::new(path, msg));
            }
        };
        if let Some(name) = &self.name {
            rule(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                &["name"],
                "must be non-empty and use only letters, digits, '-', '_' and '.' (it names run folders)",
            );
        }
        let d = &self.data;
        let pretrain = self.kind == Kind::Pretrain;
        let grpo = self.kind == Kind::Grpo;
        let builtin_check = match self.kind {
            Kind::Pretrain => descent_models::lm::corpus::validate_builtin,
            Kind::Grpo => descent_models::rl::tasks::validate_builtin,
            _ => descent_models::data::validate_builtin,
        };
        if let DataSource::Builtin(name) = &d.source
            && let Err(e) = builtin_check(name, &d.params)
        {
            let at: &[&'static str] = if d.params.is_empty() {
                &["data", "source"]
            } else {
                &["data", "params"]
            };
            rule(false, at, &e);
        }
        if !matches!(d.source, DataSource::Builtin(_)) && !d.params.is_empty() {
            rule(
                false,
                &["data", "params"],
                "only builtin datasets take params",
            );
        }
        let table =
            !(pretrain || grpo) && matches!(&d.source, DataSource::Path(p) if p.ends_with(".csv"));
        rule(
            !table || d.target.is_some(),
            &["data", "target"],
            "a CSV source needs target = \"COLUMN\" (the column to predict)",
        );
        rule(
            (0.0..1.0).contains(&d.val_fraction),
            &["data", "val_fraction"],
            "must be in [0, 1)",
        );
        rule(
            d.batch_size >= 1,
            &["data", "batch_size"],
            "must be at least 1",
        );
        let m = &self.model;
        rule(
            m.hidden.iter().all(|&w| w >= 1),
            &["model", "hidden"],
            "layer widths must be at least 1",
        );
        rule(
            m.channels.iter().all(|&c| c >= 1),
            &["model", "channels"],
            "channel counts must be at least 1",
        );
        rule(
            matches!(m.arch, Arch::Cnn | Arch::Unet) || m.channels.is_empty(),
            &["model", "channels"],
            "only a cnn or a unet has convolution channels",
        );
        let diffusion = self.kind == Kind::Diffusion;
        rule(
            m.arch != Arch::Unet || diffusion,
            &["model", "arch"],
            "a unet is a diffusion denoiser: it needs kind = \"diffusion\"",
        );
        rule(
            m.arch != Arch::Cnn || !diffusion,
            &["model", "arch"],
            "a diffusion denoiser is arch = \"mlp\" (points) or \"unet\" (images)",
        );
        rule(
            m.arch != Arch::Unet || !m.channels.is_empty(),
            &["model", "channels"],
            "a unet needs channels, one count per level, e.g. [32, 64]",
        );
        rule(
            !diffusion || matches!(m.activation, Activation::Relu | Activation::Silu),
            &["model", "activation"],
            "the diffusion denoisers use SiLU; leave activation out",
        );
        rule(
            !diffusion || !m.layer_norm,
            &["model", "layer_norm"],
            "the diffusion denoisers use group norm (unet) or none (mlp); leave layer_norm out",
        );
        rule(
            self.diffusion.is_none() || diffusion,
            &["diffusion"],
            "only kind = \"diffusion\" takes a [diffusion] table",
        );
        if let Some(df) = &self.diffusion {
            rule(
                df.timesteps >= 2,
                &["diffusion", "timesteps"],
                "must be at least 2",
            );
            rule(
                df.beta_start > 0.0 && df.beta_start <= df.beta_end && df.beta_end < 1.0,
                &["diffusion", "beta_end"],
                "beta_start and beta_end must satisfy 0 < beta_start ≤ beta_end < 1",
            );
            rule(
                (0.0..1.0).contains(&df.label_dropout),
                &["diffusion", "label_dropout"],
                "must be in [0, 1)",
            );
            rule(
                df.embed_dim >= 2 && df.embed_dim.is_multiple_of(2),
                &["diffusion", "embed_dim"],
                "must be even and at least 2",
            );
        }
        rule(
            (m.arch == Arch::Llama) == (pretrain || grpo),
            &["model", "arch"],
            if pretrain || grpo {
                "a pretrain or grpo experiment trains a language model: arch = \"llama\""
            } else {
                "a llama is a language model: it needs kind = \"pretrain\" or \"grpo\""
            },
        );
        rule(
            !(pretrain || grpo) || (m.hidden.is_empty() && m.channels.is_empty()),
            &["model", "hidden"],
            if grpo {
                "a GRPO experiment keeps its base model's shape; leave hidden and channels out"
            } else {
                "a language model's shape is in the [lm] table (hidden_size, layers, heads)"
            },
        );
        rule(
            (self.grpo.is_some() || self.d3s.is_some()) <= grpo,
            &[if self.grpo.is_some() { "grpo" } else { "d3s" }],
            "only kind = \"grpo\" takes [grpo] and [d3s] tables",
        );
        rule(
            d.seed.is_none() || pretrain || grpo,
            &["data", "seed"],
            "only language-model experiments (pretrain, grpo) take data.seed; the others split \
             and generate their data from the experiment's seed",
        );
        if grpo {
            rule(
                matches!(d.source, DataSource::Builtin(_))
                    || matches!(&d.source, DataSource::Path(p) if p.ends_with(".jsonl")),
                &["data", "source"],
                "GRPO trains on builtin:arithmetic, builtin:countdown or a .jsonl file of \
                 {\"prompt\", \"answer\"}",
            );
        }
        rule(
            self.lm.is_none() || pretrain,
            &["lm"],
            "only kind = \"pretrain\" takes an [lm] table",
        );
        if pretrain {
            let lm = self.lm.clone().unwrap_or_default();
            let set = lm.shape_keys();
            rule(
                lm.from.is_none() || set.is_empty(),
                &["lm", "from"],
                &format!(
                    "a model trained from a folder keeps that folder's shape; leave out {}",
                    set.join(", ")
                ),
            );
            let (h, heads, kv) = (lm.hidden(), lm.heads(), lm.kv());
            rule(
                heads >= 1 && h.is_multiple_of(heads) && (h / heads).is_multiple_of(2),
                &["lm", "heads"],
                "hidden_size must be a multiple of heads, with an even head width (RoPE)",
            );
            rule(
                kv >= 1 && heads.is_multiple_of(kv),
                &["lm", "kv_heads"],
                "heads must be a multiple of kv_heads",
            );
            rule(
                lm.layers.unwrap_or(1) >= 1 && lm.intermediate() >= 1,
                &["lm", "layers"],
                "layers and intermediate_size must be at least 1",
            );
            rule(
                lm.vocab_size.unwrap_or(LmConfig::VOCAB) >= descent_models::lm::bpe::MIN_VOCAB,
                &["lm", "vocab_size"],
                &format!(
                    "must be at least {} (the 256 bytes and the special tokens)",
                    descent_models::lm::bpe::MIN_VOCAB
                ),
            );
            rule(
                (2..=1 << 20).contains(&lm.context),
                &["lm", "context"],
                "must be between 2 and 1048576 tokens",
            );
            rule(
                matches!(d.source, DataSource::Builtin(_))
                    || matches!(&d.source, DataSource::Hub(_))
                    || matches!(&d.source, DataSource::Path(p)
                        if !p.contains('.') || p.ends_with(".txt") || p.ends_with(".jsonl")
                            || p.ends_with(".md")),
                &["data", "source"],
                "a language model trains on builtin:arithmetic, a .txt or .jsonl file, or a \
                 folder of them",
            );
        }
        v.extend(super::probes::validate(&self.probes, d.subset.as_ref()));
        let supervised = self.kind == Kind::Supervised;
        // A language model's pretraining has coherence (micro-batches of sequences); the
        // other probes, and any probe of the other kinds, are supervised-only for now.
        let only_coherence = ProbesConfig {
            coherence: self.probes.coherence.clone(),
            ..ProbesConfig::default()
        };
        let allowed =
            self.probes.is_default() || supervised || (pretrain && self.probes == only_coherence);
        if !allowed {
            v.push(Violation::new(
                &["probes"],
                if pretrain {
                    "a pretrain run has [probes.coherence] only; sharpness, EL2N and opposing \
                     signals run on supervised experiments"
                } else {
                    "probes run on supervised experiments (and coherence on pretrain ones)"
                },
            ));
        }
        if !supervised && d.shuffle_labels {
            v.push(Violation::new(
                &["data", "shuffle_labels"],
                "only supervised classification experiments shuffle labels",
            ));
        }
        if !supervised && d.subset.is_some() {
            v.push(Violation::new(
                &["data", "subset"],
                "only supervised experiments train on a subset",
            ));
        }
        if grpo {
            v.extend(super::grpo::validate(
                &self.grpo.clone().unwrap_or_default(),
                self.d3s.as_ref(),
                d.batch_size,
            ));
        }
        let mut rule = |ok: bool, path: &[&'static str], msg: &str| {
            if !ok {
                v.push(Violation::new(path, msg));
            }
        };
        let o = &self.optim;
        rule(
            o.lr.is_finite() && o.lr > 0.0,
            &["optim", "lr"],
            "must be a positive number",
        );
        rule(
            o.weight_decay.is_finite() && o.weight_decay >= 0.0,
            &["optim", "weight_decay"],
            "must be zero or positive",
        );
        rule(
            (0.0..1.0).contains(&o.momentum),
            &["optim", "momentum"],
            "must be in [0, 1)",
        );
        rule(
            !o.nesterov || (o.name == OptimName::Sgd && o.momentum > 0.0),
            &["optim", "nesterov"],
            "needs name = \"sgd\" and momentum > 0",
        );
        rule(
            (0.0..1.0).contains(&o.beta1),
            &["optim", "beta1"],
            "must be in [0, 1)",
        );
        rule(
            (0.0..1.0).contains(&o.beta2),
            &["optim", "beta2"],
            "must be in [0, 1)",
        );
        rule(
            o.eps.is_finite() && o.eps > 0.0,
            &["optim", "eps"],
            "must be a positive number",
        );
        rule(
            o.clip_grad_norm.is_none_or(|c| c.is_finite() && c > 0.0),
            &["optim", "clip_grad_norm"],
            "must be a positive number",
        );
        let s = &self.schedule;
        rule(
            (s.name == ScheduleName::Refined) == s.from_run.is_some(),
            &["schedule", "from_run"],
            if s.name == ScheduleName::Refined {
                "the refined schedule needs from_run = \"RUN\" (a finished run)"
            } else {
                "only the refined schedule takes from_run"
            },
        );
        let t = &self.train;
        rule(t.steps >= 1, &["train", "steps"], "must be at least 1");
        rule(
            s.warmup_steps <= t.steps,
            &["schedule", "warmup_steps"],
            "must not exceed train.steps",
        );
        rule(
            t.eval_every >= 1,
            &["train", "eval_every"],
            "must be at least 1",
        );
        rule(
            t.checkpoint_every >= 1,
            &["train", "checkpoint_every"],
            "must be at least 1",
        );
        rule(
            t.keep_checkpoints >= 1,
            &["train", "keep_checkpoints"],
            "must be at least 1 (the last checkpoint is what a run resumes from)",
        );
        v
    }
}
