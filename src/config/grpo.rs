//! `[grpo]` and `[d3s]`: the tables of a `kind = "grpo"` experiment, with TRL's names and
//! defaults where TRL has them.

use super::Violation;
pub use descent_models::rl::grpo::{SampleLevel, Scale};
pub use descent_models::rl::loss::{Level, LossType, Normalizer};
pub use descent_models::rl::select::Ramp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// The policy's starting point: a run (an experiment's name: its newest run; or a run
    /// id), a Hugging Face folder (a path from the workspace), or `hub:ORG/NAME`.
    pub from: Option<String>,
    /// With a run: the step of the checkpoint to start from (default: its exported model,
    /// else its newest checkpoint).
    pub from_step: Option<u64>,
    /// G, completions per prompt.
    pub num_generations: usize,
    pub max_completion_length: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// 0: off.
    pub top_k: usize,
    /// 0: off.
    pub min_p: f64,
    /// The KL coefficient; 0 keeps no reference model.
    pub beta: f64,
    /// μ, optimisation passes per generation.
    pub num_iterations: usize,
    /// ε_low.
    pub epsilon: f64,
    /// ε_high; defaults to `epsilon` (DAPO suggests 0.28).
    pub epsilon_high: Option<f64>,
    pub scale_rewards: Scale,
    pub loss_type: LossType,
    pub importance_sampling_level: Level,
    pub mask_truncated_completions: bool,
    /// Prompts through the model's chat template as a user turn, when it has one.
    pub chat: bool,
    /// Held-out prompts answered greedily at each evaluation.
    pub eval_problems: usize,
    /// Every how many steps the rollouts go to `rollouts.jsonl` (1: every step; long
    /// completions of a large batch make about 1 MB per logged step).
    pub log_completions_every: u64,
    /// Completions per forward and backward pass of the update, their gradients summed
    /// before the one optimizer step (TRL's per-device batch with gradient accumulation);
    /// 0: all of the step's at once.
    pub micro_batch_size: usize,
    pub rewards: Vec<RewardConfig>,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            from: None,
            from_step: None,
            num_generations: 8,
            max_completion_length: 512,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            beta: 0.0,
            num_iterations: 1,
            epsilon: 0.2,
            epsilon_high: None,
            scale_rewards: Scale::Group,
            loss_type: LossType::Dapo,
            importance_sampling_level: Level::Token,
            mask_truncated_completions: false,
            chat: true,
            eval_problems: 200,
            log_completions_every: 1,
            micro_batch_size: 0,
            rewards: vec![RewardConfig::default()],
        }
    }
}

/// One `[[grpo.rewards]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    /// `accuracy`, `format` or `command`.
    pub name: String,
    pub weight: f64,
    /// `format`: the regular expression a completion must match.
    pub pattern: Option<String>,
    /// `command`: the program and its arguments.
    pub command: Vec<String>,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            name: "accuracy".into(),
            weight: 1.0,
            pattern: None,
            command: Vec::new(),
        }
    }
}

/// `[d3s]`: dual-level down-sampling. Present means on (intra-group samples and tokens).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct D3sConfig {
    pub sample_level: SampleLevel,
    /// Kept fraction of rollouts at the start and at the end of the ramp.
    pub sample_init: f64,
    pub sample_final: f64,
    /// Token selection by |A|·H.
    pub token_level: bool,
    pub token_init: f64,
    pub token_final: f64,
    pub ramp: Ramp,
    /// The fraction of training the ramp takes.
    pub ramp_fraction: f64,
    /// PODS: recompute advantages on the kept rollouts (D³S keeps the full group's).
    pub recompute_advantages: bool,
    pub token_normalizer: Normalizer,
}

impl Default for D3sConfig {
    fn default() -> Self {
        D3sConfig {
            sample_level: SampleLevel::Intra,
            sample_init: 0.5,
            sample_final: 1.0,
            token_level: true,
            token_init: 0.2,
            token_final: 1.0,
            ramp: Ramp::Linear,
            ramp_fraction: 0.5,
            recompute_advantages: false,
            token_normalizer: Normalizer::Kept,
        }
    }
}

/// The rules of the two tables; `batch` is `data.batch_size`.
pub(crate) fn validate(g: &GrpoConfig, d3s: Option<&D3sConfig>, batch: usize) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut rule = |ok: bool, path: &[&'static str], msg: String| {
        if !ok {
            v.push(Violation::new(path, msg));
        }
    };
    rule(
        g.from.is_some(),
        &["grpo", "from"],
        "GRPO fine-tunes a model: from = \"EXPERIMENT\" (its newest run), a run id, a Hugging \
         Face folder or \"hub:ORG/NAME\""
            .into(),
    );
    rule(
        g.num_generations >= 2,
        &["grpo", "num_generations"],
        "must be at least 2 (advantages compare the completions of a prompt)".into(),
    );
    rule(
        g.num_generations >= 1 && batch.is_multiple_of(g.num_generations.max(1)),
        &["data", "batch_size"],
        format!(
            "counts completions (as TRL's): it must be a multiple of grpo.num_generations = {}",
            g.num_generations
        ),
    );
    rule(
        g.max_completion_length >= 1,
        &["grpo", "max_completion_length"],
        "must be at least 1".into(),
    );
    rule(
        g.temperature.is_finite() && g.temperature > 0.0,
        &["grpo", "temperature"],
        "must be positive (GRPO samples its completions)".into(),
    );
    rule(
        g.top_p > 0.0 && g.top_p <= 1.0,
        &["grpo", "top_p"],
        "must be in (0, 1]".into(),
    );
    rule(
        (0.0..1.0).contains(&g.min_p),
        &["grpo", "min_p"],
        "must be in [0, 1)".into(),
    );
    rule(
        g.beta.is_finite() && g.beta >= 0.0,
        &["grpo", "beta"],
        "must be zero or positive".into(),
    );
    rule(
        g.log_completions_every >= 1,
        &["grpo", "log_completions_every"],
        "must be at least 1 (every how many steps the rollouts are logged)".into(),
    );
    rule(
        g.num_iterations >= 1,
        &["grpo", "num_iterations"],
        "must be at least 1".into(),
    );
    rule(
        g.epsilon > 0.0 && g.epsilon < 1.0,
        &["grpo", "epsilon"],
        "must be in (0, 1)".into(),
    );
    rule(
        g.epsilon_high.is_none_or(|e| e.is_finite() && e > 0.0),
        &["grpo", "epsilon_high"],
        "must be positive".into(),
    );
    rule(
        !g.rewards.is_empty(),
        &["grpo", "rewards"],
        "needs at least one reward, e.g. [[grpo.rewards]] name = \"accuracy\"".into(),
    );
    for r in &g.rewards {
        let names = descent_models::rl::rewards::NAMES.join(", ");
        rule(
            descent_models::rl::rewards::NAMES.contains(&r.name.as_str()),
            &["grpo", "rewards"],
            format!("no reward function `{}`; there are {names}", r.name),
        );
        rule(
            r.weight.is_finite(),
            &["grpo", "rewards"],
            format!("reward `{}`: weight must be a number", r.name),
        );
        match (r.name.as_str(), &r.pattern) {
            ("format", None) => rule(
                false,
                &["grpo", "rewards"],
                "the format reward needs pattern = \"REGEX\"".into(),
            ),
            ("format", Some(p)) => {
                if let Err(e) = descent_models::rl::rewards::format(p) {
                    rule(false, &["grpo", "rewards"], e);
                }
            }
            (_, Some(_)) => rule(
                false,
                &["grpo", "rewards"],
                format!("only the format reward takes a pattern (not `{}`)", r.name),
            ),
            _ => {}
        }
        rule(
            (r.name == "command") != r.command.is_empty(),
            &["grpo", "rewards"],
            if r.name == "command" {
                "the command reward needs command = [\"PROGRAM\", \"ARG\", …]".into()
            } else {
                format!("only the command reward takes a command (not `{}`)", r.name)
            },
        );
    }
    if let Some(d) = d3s {
        let frac = |x: f64| x > 0.0 && x <= 1.0;
        rule(
            frac(d.sample_init) && frac(d.sample_final),
            &["d3s", "sample_init"],
            "sample_init and sample_final must be in (0, 1]".into(),
        );
        rule(
            frac(d.token_init) && frac(d.token_final),
            &["d3s", "token_init"],
            "token_init and token_final must be in (0, 1]".into(),
        );
        rule(
            frac(d.ramp_fraction),
            &["d3s", "ramp_fraction"],
            "must be in (0, 1] (the part of training the ramp takes)".into(),
        );
    }
    v
}
