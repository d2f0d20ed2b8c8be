//! The training process: `descent run` executes one experiment into its run folder.

use super::checkpoint::{self, CheckpointState};
use super::control::{self, Command};
use super::records::{Event, Metric, Num, ParamRecord, append};
use super::{CONFIG, EVENTS, METRICS, State, Status, memory, now};
use crate::config::{self, DataSource, Experiment, Kind, LmConfig, OptimName, ScheduleName};
use crate::sources::RepoKind;
use crate::workspace::Workspace;
use anyhow::{Context, bail};
use candle_core::Device;
use descent_models::data::{Dataset, load_builtin, load_source};
use descent_models::device::{self, DeviceSpec};
use descent_models::diffusion::export::MODEL_DIR;
use descent_models::diffusion::schedule::NoiseConfig;
use descent_models::diffusion::train::{DiffusionSpec, DiffusionTrainer};
use descent_models::lm::corpus::{self, Example};
use descent_models::lm::pretrain::{PretrainSpec, PretrainTrainer, Start};
use descent_models::memory::Footprint;
use descent_models::nn::ModelSpec;
use descent_models::optim::Hyper;
use descent_models::optim::schedule::{self, Family, Schedule};
use descent_models::rl::grpo::{D3s, GrpoSpec, GrpoTrainer, SampleLevel};
use descent_models::rl::loss::LossSpec;
use descent_models::rl::rewards::{Reward, RewardFn};
use descent_models::rl::select;
use descent_models::rl::tasks::{self, Problem};
use descent_models::train::{Engine, StepMetrics, TrainSpec, Trainer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the status heartbeat is rewritten while training.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// How often the experiment file is checked for live edits.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// What an experiment trains on: a table of examples, text for a language model, or
/// problems with checkable answers for GRPO.
pub enum Data {
    Table(Dataset),
    Text(Vec<Example>),
    Problems(Vec<Problem>),
}

/// The file or folder a data source names.
fn data_path(ws: &Workspace, source: &DataSource) -> anyhow::Result<PathBuf> {
    Ok(match source {
        DataSource::Path(p) => ws.settings.data_path(&ws.root).join(p),
        DataSource::Hub(r) => {
            let cache = ws.settings.hub_cache_path(&ws.root);
            crate::sources::resolve(&format!("hub:{r}"), RepoKind::Dataset, cache.as_deref())?
        }
        DataSource::Builtin(_) => unreachable!("builtins are generated"),
    })
}

/// Loads the experiment's dataset (a table; see [`load`] for text), its labels shuffled
/// when `data.shuffle_labels` asks.
pub fn load_data(ws: &Workspace, exp: &Experiment) -> anyhow::Result<Dataset> {
    let d = &exp.data;
    let mut data = match &d.source {
        DataSource::Builtin(name) => {
            load_builtin(name, &d.params, exp.seed).map_err(anyhow::Error::msg)?
        }
        other => {
            load_source(&data_path(ws, other)?, d.target.as_deref()).map_err(anyhow::Error::msg)?
        }
    };
    if d.shuffle_labels {
        data.shuffle_labels(exp.seed)
            .map_err(|e| anyhow::anyhow!("data.shuffle_labels: {e}"))?;
    }
    Ok(data)
}

/// Loads what the experiment trains on.
pub fn load(ws: &Workspace, exp: &Experiment) -> anyhow::Result<Data> {
    let d = &exp.data;
    if exp.kind == Kind::Grpo {
        return Ok(Data::Problems(match &d.source {
            DataSource::Builtin(name) => {
                tasks::builtin(name, &d.params, d.seed.unwrap_or(exp.seed))
                    .map_err(anyhow::Error::msg)?
            }
            other => tasks::load(&data_path(ws, other)?).map_err(anyhow::Error::msg)?,
        }));
    }
    if exp.kind != Kind::Pretrain {
        return Ok(Data::Table(load_data(ws, exp)?));
    }
    Ok(Data::Text(match &d.source {
        DataSource::Builtin(name) => corpus::builtin(name, &d.params, d.seed.unwrap_or(exp.seed))
            .map_err(anyhow::Error::msg)?,
        other => corpus::load(&data_path(ws, other)?).map_err(anyhow::Error::msg)?,
    }))
}

/// The schedule an experiment asks for, reading a previous run's gradient norms if refined.
fn schedule_for(ws: &Workspace, exp: &Experiment) -> anyhow::Result<Schedule> {
    let s = &exp.schedule;
    let mut shape = Vec::new();
    if s.name == ScheduleName::Refined {
        let from = s
            .from_run
            .as_deref()
            .context("refined schedule without from_run")?;
        let dir =
            super::find_run(&ws.settings.runs_path(&ws.root), from).map_err(anyhow::Error::msg)?;
        shape = refined_shape(&dir)?.0;
    }
    Ok(Schedule {
        name: s.name,
        peak_lr: exp.optim.lr,
        warmup_steps: s.warmup_steps,
        total_steps: exp.train.steps,
        shape,
    })
}

/// The refined schedule's shape from a finished run: its gradient-norm trace (L1 for AdamW,
/// L2 for SGD) through [`schedule::refine`]. Also returns the family used.
pub fn refined_shape(run_dir: &Path) -> anyhow::Result<(Vec<f64>, Family)> {
    let cfg = run_dir.join(CONFIG);
    let exp = Experiment::parse(&cfg, &config::read_text(&cfg).map_err(anyhow::Error::msg)?)
        .map_err(|e| anyhow::anyhow!("{}", e[0]))?;
    let family = match exp.optim.name {
        OptimName::Sgd => Family::Sgd,
        OptimName::Adamw => Family::Adam,
    };
    let (records, _, _) = super::records::read_from::<Metric>(&run_dir.join(METRICS), 0)
        .with_context(|| format!("reading {}", run_dir.join(METRICS).display()))?;
    let mut by_step = BTreeMap::new();
    for r in records {
        if let Metric::Train {
            step,
            grad_l2,
            grad_l1,
            ..
        } = r
        {
            by_step.insert(
                step,
                if family == Family::Adam {
                    grad_l1.0
                } else {
                    grad_l2.0
                },
            );
        }
    }
    let trace: Vec<f64> = by_step.into_values().collect();
    let shape = schedule::refine(&trace, family, 0.1)
        .map_err(|e| anyhow::anyhow!("{}: {e}", run_dir.display()))?;
    Ok((shape, family))
}

/// The probes the experiment's kind of run computes: all of them for supervised runs,
/// coherence for pretraining, none for the others.
fn probe_spec(exp: &Experiment) -> descent_models::probes::ProbeSpec {
    let all = exp.probes.spec();
    match exp.kind {
        Kind::Supervised => all,
        Kind::Pretrain => descent_models::probes::ProbeSpec {
            coherence: all.coherence,
            ..Default::default()
        },
        _ => Default::default(),
    }
}

pub fn train_spec(ws: &Workspace, exp: &Experiment) -> anyhow::Result<TrainSpec> {
    let o = &exp.optim;
    Ok(TrainSpec {
        seed: exp.seed,
        val_fraction: exp.data.val_fraction,
        batch_size: exp.data.batch_size,
        model: ModelSpec {
            arch: exp.model.arch,
            input_shape: vec![],
            outputs: 0,
            hidden: exp.model.hidden.clone(),
            channels: exp.model.channels.clone(),
            activation: exp.model.activation,
            layer_norm: exp.model.layer_norm,
        },
        hyper: Hyper {
            name: o.name,
            weight_decay: o.weight_decay,
            momentum: o.momentum,
            nesterov: o.nesterov,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
        },
        clip_grad_norm: o.clip_grad_norm,
        schedule: schedule_for(ws, exp)?,
        probes: probe_spec(exp),
        subset: match &exp.data.subset {
            Some(s) if exp.kind == Kind::Supervised => Some(
                super::probes::subset_for(&ws.settings.runs_path(&ws.root), s, exp.seed)
                    .map_err(anyhow::Error::msg)?,
            ),
            _ => None,
        },
    })
}

/// The denoiser training an experiment of kind diffusion asks for.
pub fn diffusion_spec(ws: &Workspace, exp: &Experiment) -> anyhow::Result<DiffusionSpec> {
    let d = exp.diffusion.clone().unwrap_or_default();
    Ok(DiffusionSpec {
        train: train_spec(ws, exp)?,
        embed_dim: d.embed_dim,
        noise: NoiseConfig {
            train_timesteps: d.timesteps,
            beta_start: d.beta_start,
            beta_end: d.beta_end,
            beta_schedule: d.beta_schedule,
            prediction: d.prediction,
            clip_sample: d.clip_sample,
            default_sampler: Some(d.sampler),
            ..NoiseConfig::default()
        },
        label_dropout: d.label_dropout,
    })
}

/// The language model an experiment of kind pretrain trains, and how.
pub fn pretrain_spec(ws: &Workspace, exp: &Experiment) -> anyhow::Result<PretrainSpec> {
    let lm = exp.lm.clone().unwrap_or_default();
    let start = match &lm.from {
        Some(from) => {
            let cache = ws.settings.hub_cache_path(&ws.root);
            let dir = if from.starts_with("hub:") {
                crate::sources::resolve(from, RepoKind::Model, cache.as_deref())?
            } else {
                ws.root.join(from)
            };
            Start::From(dir)
        }
        None => {
            let (hidden, heads) = (lm.hidden(), lm.heads());
            let json = serde_json::json!({
                "model_type": "llama",
                "vocab_size": lm.vocab_size.unwrap_or(LmConfig::VOCAB),
                "hidden_size": hidden,
                "intermediate_size": lm.intermediate(),
                "num_hidden_layers": lm.layers.unwrap_or(LmConfig::LAYERS),
                "num_attention_heads": heads,
                "num_key_value_heads": lm.kv(),
                "max_position_embeddings": lm.context,
                "rms_norm_eps": 1e-5,
                "rope_theta": lm.rope_theta.unwrap_or(10_000.0),
                "tie_word_embeddings": lm.tie_embeddings.unwrap_or(true),
            });
            Start::Scratch(
                descent_models::lm::config::LmConfig::parse(&json.to_string(), "[lm]")
                    .map_err(anyhow::Error::msg)?,
            )
        }
    };
    let t = train_spec(ws, exp)?;
    Ok(PretrainSpec {
        seed: t.seed,
        data_seed: exp.data.seed.unwrap_or(t.seed),
        val_fraction: t.val_fraction,
        batch_size: t.batch_size,
        hyper: t.hyper,
        clip_grad_norm: t.clip_grad_norm,
        schedule: t.schedule,
        start,
        context: lm.context,
        chat: lm.chat,
        eval_problems: lm.eval_problems,
    })
}

/// What must hold before a run of `exp` is started (no run folder is made otherwise): a
/// GRPO experiment's base model must exist, and the runs a `data.subset` ranks by.
pub fn preflight(ws: &Workspace, exp: &Experiment) -> Result<(), String> {
    if exp.kind == Kind::Grpo {
        grpo_base(ws, exp, None).map_err(|e| format!("{e:#}"))?;
    }
    if let Some(s) = &exp.data.subset {
        super::probes::subset_for(&ws.settings.runs_path(&ws.root), s, exp.seed)?;
    }
    Ok(())
}

/// The file of a GRPO run that records the base model it resolved at its start, so that a
/// resumed run keeps it even if a newer run of the base experiment exists.
const GRPO_BASE: &str = "base.json";

/// The Hugging Face folder a GRPO experiment starts from. In a run folder, the one recorded
/// at its start.
pub fn grpo_base(ws: &Workspace, exp: &Experiment, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let record = dir.map(|d| d.join(GRPO_BASE));
    if let Some(r) = &record
        && let Ok(text) = std::fs::read_to_string(r)
    {
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", r.display()))?;
        if let Some(p) = v["path"].as_str() {
            return Ok(PathBuf::from(p));
        }
    }
    let g = exp.grpo.clone().unwrap_or_default();
    let spec = g.from.as_deref().context("grpo.from is not set")?;
    let path = if spec.starts_with("hub:") {
        let cache = ws.settings.hub_cache_path(&ws.root);
        crate::sources::resolve(spec, RepoKind::Model, cache.as_deref())?
    } else if ws.root.join(spec).join("config.json").is_file() {
        ws.root.join(spec)
    } else {
        let run = super::find_run_or_newest(&ws.settings.runs_path(&ws.root), spec).map_err(
            |e| match ws.experiment(spec) {
                // The usual case: the base experiment is in the workspace, not trained yet.
                // Short enough for the TUI's status bar.
                Some(_) => anyhow::anyhow!("grpo.from = {spec:?} has no run yet: train it first"),
                None => anyhow::anyhow!("grpo.from = {spec:?}: {e}"),
            },
        )?;
        let all = checkpoint::list(&run);
        match g.from_step {
            Some(step) => match all.iter().find(|(s, _)| *s == step) {
                Some((_, d)) => d.clone(),
                None => bail!(
                    "grpo.from_step = {step}: {} has no checkpoint of that step (it has {})",
                    run.display(),
                    all.iter()
                        .map(|(s, _)| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            None if run.join(MODEL_DIR).join("config.json").is_file() => run.join(MODEL_DIR),
            None => match all.last() {
                Some((_, d)) => d.clone(),
                None => bail!(
                    "grpo.from = {spec:?}: the run {} has no checkpoint yet; train it first",
                    run.display()
                ),
            },
        }
    };
    if !path.join("config.json").is_file() {
        bail!(
            "grpo.from = {spec:?}: {} is not a language model folder (no config.json)",
            path.display()
        );
    }
    if let Some(r) = &record {
        let text = serde_json::json!({"from": spec, "path": path}).to_string();
        crate::atomic::write_atomically(r, text.as_bytes())?;
    }
    Ok(path)
}

/// The GRPO fine-tuning an experiment of kind grpo asks for.
pub fn grpo_spec(ws: &Workspace, exp: &Experiment, dir: Option<&Path>) -> anyhow::Result<GrpoSpec> {
    let g = exp.grpo.clone().unwrap_or_default();
    let t = train_spec(ws, exp)?;
    let rewards = g
        .rewards
        .iter()
        .map(|r| {
            let func = match r.name.as_str() {
                "format" => descent_models::rl::rewards::format(r.pattern.as_deref().unwrap_or(""))
                    .map_err(anyhow::Error::msg)?,
                "command" => RewardFn::Command(r.command.clone()),
                _ => RewardFn::Accuracy,
            };
            Ok(Reward {
                name: r.name.clone(),
                func,
                weight: r.weight,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let d3s = match &exp.d3s {
        None => D3s::default(),
        Some(d) => {
            let frac = |init, last| select::Schedule {
                init,
                last,
                over: d.ramp_fraction,
                ramp: d.ramp,
            };
            D3s {
                sample: d.sample_level,
                sample_frac: if d.sample_level == SampleLevel::Off {
                    select::Schedule::constant(1.0)
                } else {
                    frac(d.sample_init, d.sample_final)
                },
                token_frac: d.token_level.then(|| frac(d.token_init, d.token_final)),
                recompute_advantages: d.recompute_advantages,
            }
        }
    };
    Ok(GrpoSpec {
        seed: t.seed,
        data_seed: exp.data.seed.unwrap_or(t.seed),
        batch_size: t.batch_size,
        hyper: t.hyper,
        clip_grad_norm: t.clip_grad_norm,
        schedule: t.schedule,
        base: grpo_base(ws, exp, dir)?,
        num_generations: g.num_generations,
        max_completion_length: g.max_completion_length,
        temperature: g.temperature,
        top_p: g.top_p,
        top_k: g.top_k,
        min_p: g.min_p,
        num_iterations: g.num_iterations,
        loss: LossSpec {
            loss_type: g.loss_type,
            level: g.importance_sampling_level,
            epsilon_low: g.epsilon,
            epsilon_high: g.epsilon_high.unwrap_or(g.epsilon),
            beta: g.beta,
            max_completion_length: g.max_completion_length,
            normalizer: exp
                .d3s
                .as_ref()
                .map(|d| d.token_normalizer)
                .unwrap_or_default(),
        },
        scale_rewards: g.scale_rewards,
        mask_truncated_completions: g.mask_truncated_completions,
        rewards,
        chat: g.chat,
        val_fraction: t.val_fraction,
        eval_problems: g.eval_problems,
        log_completions_every: g.log_completions_every,
        micro_batch_size: g.micro_batch_size,
        d3s,
    })
}

/// The memory the experiment's run will need on `data`.
fn footprint(
    ws: &Workspace,
    exp: &Experiment,
    data: &Data,
    dir: Option<&Path>,
) -> anyhow::Result<Footprint> {
    match (exp.kind, data) {
        (_, Data::Problems(p)) => grpo_spec(ws, exp, dir)?.footprint(p),
        (_, Data::Text(text)) => pretrain_spec(ws, exp)?.footprint(text),
        (Kind::Diffusion, Data::Table(t)) => diffusion_spec(ws, exp)?.footprint(t),
        (_, Data::Table(t)) => train_spec(ws, exp)?.footprint(t),
    }
    .map_err(anyhow::Error::msg)
}

/// The engine that trains the experiment: one per kind of run.
fn engine(
    ws: &Workspace,
    exp: &Experiment,
    data: Data,
    device: Device,
    dir: &Path,
) -> anyhow::Result<Box<dyn Engine>> {
    Ok(match (exp.kind, data) {
        (_, Data::Problems(p)) => {
            let spec = grpo_spec(ws, exp, Some(dir))?;
            Box::new(GrpoTrainer::new(p, spec, device).map_err(anyhow::Error::msg)?)
        }
        (_, Data::Text(text)) => {
            let spec = pretrain_spec(ws, exp)?;
            let mut t = PretrainTrainer::new(text, spec, device).map_err(anyhow::Error::msg)?;
            t.set_probes(probe_spec(exp));
            Box::new(t)
        }
        (Kind::Diffusion, Data::Table(t)) => {
            let spec = diffusion_spec(ws, exp)?;
            Box::new(DiffusionTrainer::new(t, spec, device)?)
        }
        (_, Data::Table(t)) => Box::new(Trainer::new(t, train_spec(ws, exp)?, device)?),
    })
}

/// For `descent check`: loads the experiment's data and says whether its estimated memory
/// exceeds half of what its device has free now (`None`: it does not).
pub fn memory_warning(
    ws: &Workspace,
    exp: &Experiment,
    file: &Path,
) -> anyhow::Result<Option<String>> {
    let chosen =
        device::resolve(exp.device.unwrap_or(ws.settings.device)).map_err(anyhow::Error::msg)?;
    let data = load(ws, exp)?;
    let fp = footprint(ws, exp, &data, None)?;
    let avail = memory::Available::now(&chosen.label).map_err(anyhow::Error::msg)?;
    Ok(memory::warning(file, &fp, &avail, &size_settings(exp)))
}

/// The settings that set a run's memory, as `key = value`, for messages.
pub fn size_settings(exp: &Experiment) -> Vec<String> {
    if exp.kind == Kind::Grpo {
        let g = exp.grpo.clone().unwrap_or_default();
        return vec![
            format!("grpo.from = {:?}", g.from.unwrap_or_default()),
            format!("grpo.max_completion_length = {}", g.max_completion_length),
            format!("data.batch_size = {}", exp.data.batch_size),
            format!("grpo.beta = {}", g.beta),
        ];
    }
    if exp.kind == Kind::Pretrain {
        let lm = exp.lm.clone().unwrap_or_default();
        let mut keys = match &lm.from {
            Some(f) => vec![format!("lm.from = {f:?}")],
            None => vec![
                format!("lm.hidden_size = {}", lm.hidden()),
                format!("lm.layers = {}", lm.layers.unwrap_or(LmConfig::LAYERS)),
                format!(
                    "lm.vocab_size = {}",
                    lm.vocab_size.unwrap_or(LmConfig::VOCAB)
                ),
            ],
        };
        keys.push(format!("lm.context = {}", lm.context));
        keys.push(format!("data.batch_size = {}", exp.data.batch_size));
        return keys;
    }
    let m = &exp.model;
    let mut keys = vec![format!("model.hidden = {:?}", m.hidden)];
    if !m.channels.is_empty() {
        keys.push(format!("model.channels = {:?}", m.channels));
    }
    keys.push(format!("data.batch_size = {}", exp.data.batch_size));
    keys.push(format!("optim.name = \"{}\"", exp.optim.name));
    keys
}

/// Where the experiment's file is, for live edits.
pub struct Source {
    pub path: PathBuf,
    pub experiment: Experiment,
}

struct Run<'a> {
    dir: &'a Path,
    trainer: Box<dyn Engine>,
    status: Status,
    exp: Experiment,
    /// The experiment file, watched for live edits.
    source: PathBuf,
    /// The keys this run sets otherwise than the file (a sweep member's).
    overrides: config::sweep::Overrides,
    /// The experiment file as last read, so an unchanged file is not parsed again.
    config_text: Option<String>,
    controls: control::Reader,
    last_heartbeat: Instant,
    last_config_check: Option<Instant>,
    /// Structural edits already reported, so each is reported once.
    reported_restart: Option<Vec<String>>,
    progress: Option<indicatif::ProgressBar>,
}

/// Runs (or resumes) the experiment in `dir` until it finishes, stops or fails.
pub fn execute(
    ws: &Workspace,
    source: Source,
    dir: &Path,
    device_spec: Option<DeviceSpec>,
    resume: bool,
) -> anyhow::Result<State> {
    // A queued run or sweep member sets some keys otherwise than its file (launch.json).
    let overrides = super::launch::Launch::read(dir)
        .map_err(anyhow::Error::msg)?
        .map(|l| l.overrides)
        .unwrap_or_default();
    let mut exp = source.experiment.clone();
    let mut member = Ok(());
    if resume {
        // A resumed run continues the experiment it started with.
        let cfg = dir.join(CONFIG);
        exp = Experiment::parse(&cfg, &config::read_text(&cfg).map_err(anyhow::Error::msg)?)
            .map_err(|e| anyhow::anyhow!("{}", e[0]))?;
    } else {
        // The run is the experiment without its [sweep], with the member's keys set.
        match config::sweep::apply(&exp, &overrides) {
            Ok(e) => exp = e,
            Err(e) => member = Err(anyhow::anyhow!("{}: {e}", source.path.display())),
        }
        let text = toml::to_string(&exp).context("serialising the experiment")?;
        crate::atomic::write_atomically(&dir.join(CONFIG), text.as_bytes())?;
    }
    let run_id = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut status = Status::starting(exp.name(), &run_id, exp.train.steps);
    let old_status = if resume { Status::read(dir).ok() } else { None };
    // The status exists from the first moment, so a run that fails while loading its data
    // says why to whoever looks (the TUI, `descent runs`), not only to its stdout.
    status.write(dir)?;
    if let Err(e) = member {
        return Err(fail_early(dir, &mut status, e));
    }
    terminate::install();
    let setup = (|| -> anyhow::Result<(Box<dyn Engine>, device::Chosen)> {
        let spec = device_spec.or(exp.device).unwrap_or(ws.settings.device);
        let chosen = device::resolve(spec).map_err(anyhow::Error::msg)?;
        let data = load(ws, &exp)?;
        // Refuse a model that cannot fit before allocating it: an allocation that fails
        // aborts the process.
        let fp = footprint(ws, &exp, &data, Some(dir))?;
        match memory::Available::now(&chosen.label) {
            Ok(avail) => memory::ensure_fits(&source.path, &fp, &avail, &size_settings(&exp))
                .map_err(anyhow::Error::msg)?,
            Err(why) => eprintln!("cannot tell the free memory of {}: {why}", chosen.label),
        }
        let trainer = engine(ws, &exp, data, chosen.device.clone(), dir)?;
        Ok((trainer, chosen))
    })();
    let (mut trainer, chosen) = match setup {
        Ok(v) => v,
        Err(e) => return Err(fail_early(dir, &mut status, e)),
    };
    status.device = chosen.label.clone();
    let mut start_event = ("start", format!("on {} ({})", chosen.label, chosen.reason));
    if resume {
        let old = old_status;
        status.started_at = old.as_ref().map_or(status.started_at, |s| s.started_at);
        let (step, ckpt) = match resume_from(trainer.as_mut(), dir) {
            Ok(v) => v,
            Err(e) => return Err(fail_early(dir, &mut status, e)),
        };
        status.step = step;
        status.total_steps = ckpt.as_ref().map_or(status.total_steps, |c| c.total_steps);
        trainer.schedule_mut().total_steps = status.total_steps;
        if let Some(c) = &ckpt {
            trainer.schedule_mut().peak_lr = c.peak_lr;
            status.control_acked = c.control_acked;
            status.evals = c.evals.clone();
        }
        // Commands applied before the run went down are not applied again.
        status.control_acked = old.map_or(status.control_acked, |s| {
            s.control_acked.max(status.control_acked)
        });
        start_event = ("resume", format!("from step {step} on {}", chosen.label));
    }
    let mut run = Run {
        dir,
        controls: control::Reader::new(dir, status.control_acked),
        trainer,
        status,
        exp,
        source: source.path,
        overrides,
        config_text: None,
        last_heartbeat: Instant::now(),
        last_config_check: None,
        reported_restart: None,
        progress: progress_bar(),
    };
    run.event(start_event.0, start_event.1);
    if let Some(what) = run.trainer.describe() {
        run.event("data", what);
    }
    run.set_state(State::Running, None);
    let result = run.train_loop();
    let end = match result {
        Ok(state) => state,
        Err(e) => {
            run.event("fail", format!("{e:#}"));
            run.set_state(State::Failed, Some(format!("{e:#}")));
            if let Some(p) = &run.progress {
                p.abandon();
            }
            return Err(e);
        }
    };
    if let Some(p) = &run.progress {
        p.finish();
    }
    Ok(end)
}

/// Records a failure before the first step in `status.json` and `events.jsonl`.
fn fail_early(dir: &Path, status: &mut Status, e: anyhow::Error) -> anyhow::Error {
    let message = format!("{e:#}");
    status.state = State::Failed;
    status.message = Some(message.clone());
    let _ = status.write(dir);
    let event = Event {
        time: now(),
        step: status.step,
        event: "fail".into(),
        message,
    };
    let _ = append(&dir.join(EVENTS), &event);
    e
}

/// Loads the newest readable checkpoint, falling back to older ones if it is damaged.
fn resume_from(
    trainer: &mut dyn Engine,
    dir: &Path,
) -> anyhow::Result<(u64, Option<CheckpointState>)> {
    let all = checkpoint::list(dir);
    if all.is_empty() {
        eprintln!(
            "{}: no checkpoint; starting again from step 0",
            dir.display()
        );
        return Ok((0, None));
    }
    let mut errors = Vec::new();
    for (step, ckpt) in all.iter().rev() {
        match checkpoint::read_state(ckpt).and_then(|s| {
            trainer
                .load(ckpt, *step)
                .map_err(|e| format!("{}: {e}", ckpt.display()))?;
            Ok(s)
        }) {
            Ok(state) => {
                for e in &errors {
                    eprintln!("skipped a damaged checkpoint: {e}");
                }
                return Ok((*step, Some(state)));
            }
            Err(e) => errors.push(e),
        }
    }
    bail!(
        "no usable checkpoint in {}: {}",
        dir.display(),
        errors.join("; ")
    )
}

/// A progress bar on standard output when it is a terminal. (Not on standard error, where
/// indicatif draws by default: the supervisor reads the worker's standard error through a
/// pipe, see `supervise`.)
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal().then(|| {
        let p = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stdout(),
        );
        p.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
            )
            .expect("valid template"),
        );
        p
    })
}

impl Run<'_> {
    fn event(&mut self, event: &str, message: String) {
        let e = Event {
            time: now(),
            step: self.status.step,
            event: event.into(),
            message,
        };
        if let Err(err) = append(&self.dir.join(EVENTS), &e) {
            tracing::error!("cannot append to events.jsonl: {err}");
        }
        match &self.progress {
            Some(p) => p.println(format!("{} {}: {}", e.step, e.event, e.message)),
            None => println!("step {}: {} {}", e.step, e.event, e.message),
        }
    }

    fn set_state(&mut self, state: State, message: Option<String>) {
        self.status.state = state;
        self.status.message = message;
        self.heartbeat();
    }

    fn heartbeat(&mut self) {
        self.status.heartbeat = now();
        self.last_heartbeat = Instant::now();
        if let Err(e) = self.status.write(self.dir) {
            tracing::error!("cannot write status.json: {e}");
        }
    }

    fn checkpoint(&mut self, why: &str) {
        let state = CheckpointState {
            step: self.trainer.step(),
            seed: self.exp.seed,
            peak_lr: self.trainer.schedule().peak_lr,
            total_steps: self.status.total_steps,
            control_acked: self.status.control_acked,
            time: now(),
            evals: self.status.evals.clone(),
        };
        match checkpoint::write(
            self.trainer.as_ref(),
            self.dir,
            &state,
            self.exp.train.keep_checkpoints,
        ) {
            Ok(p) => self.event("checkpoint", format!("{} ({why})", p.display())),
            // The run goes on; the previous checkpoints are intact.
            Err(e) => self.event("checkpoint-failed", e),
        }
    }

    /// Applies new control commands; returns false when the run must stop.
    fn apply_controls(&mut self) -> bool {
        for line in self.controls.poll() {
            let c = line.command;
            let before = self.status.state;
            match c {
                Command::Lr { value } => {
                    self.trainer.schedule_mut().peak_lr = value;
                    self.event("lr", format!("peak learning rate set to {value}"));
                }
                Command::Checkpoint => self.checkpoint("asked for"),
                Command::Pause if before == State::Running => self.event("pause", "paused".into()),
                Command::Resume if before == State::Paused => {
                    self.event("unpause", "resumed".into())
                }
                Command::Stop => self.event("stop", "stopping".into()),
                _ => {}
            }
            self.status.control_acked = line.id;
            let after = control::next_state(before, c);
            let message = if after == State::Paused {
                self.status.message.clone()
            } else {
                None
            };
            self.set_state(after, message);
            if after == State::Stopped {
                return false;
            }
        }
        true
    }

    /// Re-reads the experiment file: hot keys apply at once, other edits are reported.
    fn check_config(&mut self) {
        self.last_config_check = Some(Instant::now());
        let path = self.source.clone();
        let Ok(text) = config::read_text(&path) else {
            return;
        };
        // Parsing checks a [sweep]'s every member: only worth it when the file changed.
        if self.config_text.as_deref() == Some(text.as_str()) {
            return;
        }
        self.config_text = Some(text.clone());
        let Ok(new) = Experiment::parse(&path, &text) else {
            return;
        };
        // What this run would be now: the file's keys under the run's own overrides.
        let Ok(new) = config::sweep::apply(&new, &self.overrides) else {
            return;
        };
        let changed = changed_keys(&self.exp, &new);
        if changed.is_empty() {
            return;
        }
        let (hot, cold): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|k| Experiment::is_hot(k));
        let probes: Vec<&String> = hot.iter().filter(|k| k.starts_with("probes.")).collect();
        if !probes.is_empty() {
            let keys = probes
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let msg = if self.trainer.set_probes(probe_spec(&new)) {
                format!("probes changed: {keys}")
            } else {
                format!("probes changed ({keys}), but this kind of run has none")
            };
            self.exp.probes = new.probes.clone();
            self.event("config", msg);
        }
        for key in &hot {
            let msg = match key.as_str() {
                "optim.lr" => {
                    self.trainer.schedule_mut().peak_lr = new.optim.lr;
                    self.exp.optim.lr = new.optim.lr;
                    format!("optim.lr = {} (from the experiment file)", new.optim.lr)
                }
                "train.eval_every" => {
                    self.exp.train.eval_every = new.train.eval_every;
                    format!("train.eval_every = {}", new.train.eval_every)
                }
                "train.checkpoint_every" => {
                    self.exp.train.checkpoint_every = new.train.checkpoint_every;
                    format!("train.checkpoint_every = {}", new.train.checkpoint_every)
                }
                "train.steps" => {
                    self.exp.train.steps = new.train.steps;
                    self.status.total_steps = new.train.steps;
                    self.trainer.schedule_mut().total_steps = new.train.steps;
                    format!("train.steps = {}", new.train.steps)
                }
                _ => continue,
            };
            self.event("config", msg);
        }
        if !cold.is_empty() && self.reported_restart.as_ref() != Some(&cold) {
            self.event("config", format!("restart to apply: {}", cold.join(", ")));
            self.reported_restart = Some(cold);
        }
    }

    fn record_step(&mut self, m: &StepMetrics, examples_per_s: f64, steps_per_s: f64) {
        let rec = Metric::Train {
            step: m.step,
            time: now(),
            loss: Num(m.loss),
            grad_l2: Num(m.grad_l2),
            grad_l1: Num(m.grad_l1),
            lr: Num(m.lr),
            clip_scale: Num(m.clip_scale),
            examples_per_s: Num(examples_per_s),
            tokens_per_s: m.tokens.map(|t| Num(t as f64 * steps_per_s)),
            extra: m.extra.iter().map(|(k, v)| (k.clone(), Num(*v))).collect(),
            params: m
                .params
                .iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        ParamRecord {
                            grad_l2: Num(p.grad_l2),
                            update_ratio: Num(p.update_ratio),
                        },
                    )
                })
                .collect(),
        };
        if let Err(e) = append(&self.dir.join(METRICS), &rec) {
            tracing::error!("cannot append to metrics.jsonl: {e}");
        }
        for line in &m.logs {
            let rec = super::records::StepLine {
                step: m.step,
                body: [(line.key, &line.value)].into(),
            };
            if let Err(e) = append(&self.dir.join(line.file), &rec) {
                tracing::error!("cannot append to {}: {e}", line.file);
            }
        }
        self.status.step = m.step;
        self.status.loss = Some(m.loss);
        self.status.lr = Some(m.lr);
        self.status.examples_per_s = Some(examples_per_s);
        // Smoothed, so the ETA does not jump with every step's timing noise.
        let prev = self.status.steps_per_s.unwrap_or(steps_per_s);
        self.status.steps_per_s = Some(0.95 * prev + 0.05 * steps_per_s);
    }

    fn evaluate(&mut self) -> anyhow::Result<()> {
        let Some(e) = self.trainer.evaluate()? else {
            return Ok(());
        };
        let rec = Metric::Eval {
            step: self.trainer.step(),
            time: now(),
            loss: e.loss.map(Num),
            accuracy: e.accuracy.map(Num),
        };
        append(&self.dir.join(METRICS), &rec)?;
        self.status.evals.record(e.loss, e.accuracy);
        let mut line = format!("step {} eval", self.trainer.step());
        if let Some(l) = e.loss {
            line += &format!(" loss {l:.4}");
        }
        if let Some(a) = e.accuracy {
            line += &format!(" accuracy {:.1}%", a * 100.0);
        }
        match &self.progress {
            Some(p) => p.set_message(line),
            None => println!("{line}"),
        }
        Ok(())
    }

    fn train_loop(&mut self) -> anyhow::Result<State> {
        // Edits made while a run was down (say, more steps) apply before its first step.
        self.check_config();
        if let Some(p) = &self.progress {
            p.set_length(self.status.total_steps);
            p.set_position(self.trainer.step());
        }
        if self.trainer.step() == 0 && self.trainer.evaluates_at_start() {
            self.evaluate()?;
        }
        let batch = self.trainer.batch_size() as f64;
        while self.trainer.step() < self.status.total_steps {
            if terminate::asked() {
                // Slurm's preemption, scancel and time limit, and a shutdown, send SIGTERM
                // and wait a while before SIGKILL: enough to save where the run is.
                self.checkpoint("terminated");
                let msg = format!(
                    "terminated (SIGTERM) at step {}, after saving a checkpoint; R or \
                     --resume continues it",
                    self.trainer.step()
                );
                self.event("stop", msg.clone());
                self.set_state(State::Stopped, Some(msg));
                return Ok(State::Stopped);
            }
            if !self.apply_controls() {
                self.checkpoint("stopped");
                return Ok(State::Stopped);
            }
            if self
                .last_config_check
                .is_none_or(|t| t.elapsed() >= CONFIG_POLL)
            {
                self.check_config();
            }
            if self.status.state == State::Paused {
                if self.last_heartbeat.elapsed() >= HEARTBEAT {
                    self.heartbeat();
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let t0 = Instant::now();
            let lr = self.trainer.schedule().lr(self.trainer.step());
            let m = self.trainer.train_step(lr)?;
            let secs = t0.elapsed().as_secs_f64().max(1e-9);
            self.record_step(&m, batch / secs, 1.0 / secs);
            if let Some(t) = m.tokens {
                self.status.tokens_per_s = Some(t as f64 / secs);
            }
            if let Some(p) = &self.progress {
                p.set_position(m.step);
            }
            if let Some(where_) = &m.non_finite {
                let msg = format!(
                    "{where_}; the update was skipped and the run paused — lower the learning rate (descent ctl RUN lr VALUE) and resume"
                );
                self.event("nan", msg.clone());
                self.set_state(State::Paused, Some(msg));
                continue;
            }
            let step = self.trainer.step();
            if step.is_multiple_of(self.exp.train.eval_every) {
                self.evaluate()?;
            }
            if step.is_multiple_of(self.exp.train.checkpoint_every)
                && step < self.status.total_steps
            {
                self.checkpoint("scheduled");
            }
            if self.last_heartbeat.elapsed() >= HEARTBEAT {
                self.heartbeat();
            }
        }
        if !self
            .trainer
            .step()
            .is_multiple_of(self.exp.train.eval_every)
        {
            self.evaluate()?;
        }
        self.checkpoint("final");
        match self.trainer.export(self.dir) {
            Ok(Some(what)) => self.event("export", what),
            Ok(None) => {}
            Err(e) => self.event("export-failed", e.to_string()),
        }
        self.event("finish", format!("finished {} steps", self.trainer.step()));
        self.set_state(State::Finished, None);
        Ok(State::Finished)
    }
}

/// Dotted keys whose values differ between two experiments.
pub fn changed_keys(a: &Experiment, b: &Experiment) -> Vec<String> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &serde_json::to_value(a).unwrap_or_default(), &mut fa);
    flatten("", &serde_json::to_value(b).unwrap_or_default(), &mut fb);
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    keys.into_iter()
        .filter(|k| fa.get(*k) != fb.get(*k))
        .cloned()
        .collect()
}

/// SIGTERM asks the run to save a checkpoint and stop at the next step.
mod terminate {
    use std::sync::atomic::{AtomicBool, Ordering};

    static ASKED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_term(_: libc::c_int) {
        ASKED.store(true, Ordering::SeqCst);
    }

    pub fn install() {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t) };
    }

    pub fn asked() -> bool {
        ASKED.load(Ordering::SeqCst)
    }
}
