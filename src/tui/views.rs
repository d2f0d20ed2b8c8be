//! Turns the app's data (workspace, inventory) into the panes' view data.

use crate::config::{Arch, DataSource, Experiment, ScheduleName};
use crate::inventory::Inventory;
use crate::runs::{RunInfo, State};
use crate::workspace::Workspace;
use descent_panes::{
    CheckpointEntry, CheckpointsView, DatasetsView, ExperimentRow, FileRow, RunRow, WorkspaceView,
};
use std::path::{Path, PathBuf};

pub fn workspace_view(ws: &Workspace, inv: &Inventory) -> WorkspaceView {
    let rel = |p: &Path| p.strip_prefix(&ws.root).unwrap_or(p).display().to_string();
    let experiments = ws
        .experiments
        .values()
        .map(|f| {
            let errors = f
                .errors
                .iter()
                .map(|e| e.display_relative(&ws.root))
                .collect();
            let mut row = ExperimentRow {
                name: f.name(),
                file: rel(&f.path),
                errors,
                ..ExperimentRow::default()
            };
            if let Some(exp) = &f.good {
                row.kind = exp.kind.to_string();
                row.summary = summary(exp);
                row.details = details(exp, ws);
                row.in_force = true;
            }
            row
        })
        .collect();
    WorkspaceView {
        experiments,
        errors: ws
            .errors()
            .iter()
            .map(|e| e.display_relative(&ws.root))
            .collect(),
        runs_dir: rel(&ws.settings.runs_path(&ws.root)),
        runs: inv.runs.iter().map(run_row).collect(),
    }
}

fn run_row(r: &RunInfo) -> RunRow {
    let mut row = RunRow {
        experiment: r.experiment.clone(),
        id: r.id.clone(),
        state: r.state.to_string(),
        live: r.state.is_live(),
        sweep: r.launch.as_ref().and_then(|l| l.sweep.clone()),
        member: r.launch.as_ref().and_then(|l| l.member),
        overrides: r
            .launch
            .as_ref()
            .map(|l| crate::config::sweep::describe(&l.overrides))
            .unwrap_or_default(),
        job: r.job.as_ref().map(|j| format!("slurm {}", j.slurm_id())),
        ..RunRow::default()
    };
    match &r.status {
        Ok(s) => {
            row.step = s.step;
            row.total = s.total_steps;
            row.loss = s.loss;
            row.eval_loss = s.evals.eval_loss;
            row.accuracy = s.evals.eval_accuracy;
            row.examples_per_s = s.examples_per_s;
            row.tokens_per_s = s.tokens_per_s;
            row.device = s.device.clone();
            row.message = r.reason().map(|why| match r.died {
                Some(_) => format!("{why}; R resumes it"),
                None => why,
            });
            if r.state == State::Running
                && let Some(rate) = s.steps_per_s.filter(|v| *v > 0.0)
            {
                row.eta = Some(duration(s.total_steps.saturating_sub(s.step) as f64 / rate));
            }
        }
        Err(e) => row.message = Some(e.clone()),
    }
    row
}

/// `1h02m`, `3m12s`, `45s`.
fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A language model's shape, as the experiment sets it (GRPO: its base model).
fn lm_text(exp: &Experiment) -> String {
    if exp.kind == crate::config::Kind::Grpo {
        let g = exp.grpo.clone().unwrap_or_default();
        let from = g.from.unwrap_or_default();
        return match g.from_step {
            Some(step) => format!("llama from {from} at step {step}"),
            None => format!("llama from {from}"),
        };
    }
    let lm = exp.lm.clone().unwrap_or_default();
    if let Some(from) = &lm.from {
        return format!("llama from {from}, context {}", lm.context);
    }
    format!(
        "llama {}×{} heads {} context {}",
        lm.layers.unwrap_or(crate::config::LmConfig::LAYERS),
        lm.hidden(),
        lm.heads(),
        lm.context
    )
}

fn model_text(exp: &Experiment) -> String {
    let m = &exp.model;
    let arch = match m.arch {
        Arch::Mlp => "mlp",
        Arch::Cnn => "cnn",
        Arch::Unet => "unet",
        Arch::Llama => return lm_text(exp),
    };
    let mut s = arch.to_string();
    if !m.channels.is_empty() {
        s += &format!(" conv {:?}", m.channels);
    }
    if !m.hidden.is_empty() {
        s += &format!(" hidden {:?}", m.hidden);
    }
    if exp.kind == crate::config::Kind::Diffusion {
        // The denoisers' activation is fixed (model.activation does not apply to them).
        return s + " silu";
    }
    s += &format!(" {:?}", m.activation).to_lowercase();
    if m.layer_norm {
        s += " + layer norm";
    }
    s
}

fn optim_text(exp: &Experiment) -> String {
    let o = &exp.optim;
    let mut s = format!("{:?} lr {}", o.name, o.lr).to_lowercase();
    if o.weight_decay > 0.0 {
        s += &format!(", weight decay {}", o.weight_decay);
    }
    if o.momentum > 0.0 {
        s += &format!(", momentum {}", o.momentum);
    }
    if o.nesterov {
        s += " (nesterov)";
    }
    if let Some(c) = o.clip_grad_norm {
        s += &format!(", clip norm {c}");
    }
    s
}

fn schedule_text(exp: &Experiment) -> String {
    let s = &exp.schedule;
    let mut t = match s.name {
        ScheduleName::Constant => "constant".to_string(),
        ScheduleName::Cosine => "cosine".into(),
        ScheduleName::LinearDecay => "linear decay".into(),
        ScheduleName::Refined => format!("refined from {}", s.from_run.as_deref().unwrap_or("?")),
    };
    if s.warmup_steps > 0 {
        t += &format!(", {} warmup steps", s.warmup_steps);
    }
    t
}

fn summary(exp: &Experiment) -> String {
    format!(
        "{} · {} · {} · {} · {} steps",
        exp.kind,
        exp.data.source,
        model_text(exp),
        optim_text(exp),
        exp.train.steps
    )
}

fn details(exp: &Experiment, ws: &Workspace) -> Vec<(String, String)> {
    let d = &exp.data;
    let mut data = d.source.to_string();
    if let DataSource::Path(p) = &d.source {
        data += &format!(" ({})", ws.settings.data_path(&ws.root).join(p).display());
    }
    if let Some(t) = &d.target {
        data += &format!(", target column {t}");
    }
    let device = match exp.device {
        Some(d) => d.to_string(),
        None => format!("{} (workspace default)", ws.settings.device),
    };
    let t = &exp.train;
    let mut rows = vec![
        ("kind".into(), exp.kind.to_string()),
        ("data".into(), data),
        (
            "split".into(),
            format!(
                "{:.0}% validation, batch {}",
                d.val_fraction * 100.0,
                d.batch_size
            ),
        ),
        ("model".into(), model_text(exp)),
        ("optimizer".into(), optim_text(exp)),
        ("schedule".into(), schedule_text(exp)),
        (
            "train".into(),
            format!(
                "{} steps, eval every {}, checkpoint every {} (keep {})",
                t.steps, t.eval_every, t.checkpoint_every, t.keep_checkpoints
            ),
        ),
        ("seed".into(), exp.seed.to_string()),
        ("device".into(), device),
        ("live-editable".into(), Experiment::HOT_KEYS.join(", ")),
    ];
    if exp.kind == crate::config::Kind::Grpo {
        let g = exp.grpo.clone().unwrap_or_default();
        let rewards: Vec<String> = g
            .rewards
            .iter()
            .map(|r| format!("{} × {}", r.weight, r.name))
            .collect();
        let mut grpo = format!(
            "G = {}, ≤ {} new tokens at T = {}, β = {}, μ = {}, ε = {}, {} loss, {} scaling, \
             rewards {}",
            g.num_generations,
            g.max_completion_length,
            g.temperature,
            g.beta,
            g.num_iterations,
            g.epsilon,
            toml_name(&g.loss_type),
            toml_name(&g.scale_rewards),
            rewards.join(" + ")
        );
        if let Some(d) = &exp.d3s {
            let tokens = if d.token_level {
                format!("{}→{}", d.token_init, d.token_final)
            } else {
                "all".into()
            };
            grpo += &format!(
                "; D³S {} rollouts {}→{}, tokens {tokens}, over {:.0}% of training",
                toml_name(&d.sample_level),
                d.sample_init,
                d.sample_final,
                d.ramp_fraction * 100.0
            );
        }
        rows.insert(4, ("grpo".to_string(), grpo));
    }
    if exp.kind == crate::config::Kind::Diffusion {
        let df = exp.diffusion.clone().unwrap_or_default();
        let row = (
            "diffusion".to_string(),
            format!(
                "{} timesteps, {} betas {}–{}, {} prediction, label dropout {}, sampler {}{}",
                df.timesteps,
                toml_name(&df.beta_schedule),
                df.beta_start,
                df.beta_end,
                toml_name(&df.prediction),
                df.label_dropout,
                df.sampler,
                if df.clip_sample { ", clip x0" } else { "" }
            ),
        );
        rows.insert(4, row);
    }
    rows
}

/// A setting's value as the config file writes it (its serde name, e.g. `dr_grpo`).
fn toml_name(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A builtin dataset's row: name, description, and its parameters with their defaults.
fn builtin_row(
    name: &str,
    description: &str,
    params: &[(&str, f64, &str)],
) -> (String, String, String) {
    let params: Vec<String> = params
        .iter()
        .map(|(k, d, what)| format!("{k} = {d} ({what})"))
        .collect();
    (name.into(), description.into(), params.join(", "))
}

pub fn datasets_view(ws: &Workspace, inv: &Inventory) -> DatasetsView {
    DatasetsView {
        builtins: descent_models::data::BUILTINS
            .iter()
            .map(|b| builtin_row(b.name, b.description, b.params))
            .chain(
                descent_models::lm::corpus::BUILTINS
                    .iter()
                    .map(|b| builtin_row(b.name, b.description, b.params)),
            )
            .collect(),
        data_dir: display_in(&inv.data_dir, &ws.root),
        files: inv
            .data_files
            .iter()
            .map(|e| FileRow {
                name: e.name.clone(),
                bytes: e.bytes,
            })
            .collect(),
        hub_cache: inv.hub_cache.as_ref().map(|p| p.display().to_string()),
        hub_datasets: inv.hub_datasets.clone(),
        opened: Vec::new(),
        detail: None,
        pull: None,
    }
}

/// Run checkpoints (newest step first within each run), paths the user opened, hub models.
pub fn checkpoints_view(ws: &Workspace, inv: &Inventory, opened: &[PathBuf]) -> CheckpointsView {
    let mut entries: Vec<CheckpointEntry> = opened
        .iter()
        .map(|p| CheckpointEntry {
            origin: "opened".into(),
            label: p.display().to_string(),
            source: p.display().to_string(),
        })
        .collect();
    entries.extend(inv.checkpoints.iter().map(|c| CheckpointEntry {
        origin: "run".into(),
        label: format!("step {} · {}/{}", c.step, c.experiment, c.run_id),
        source: c.dir.display().to_string(),
    }));
    entries.extend(inv.hub_models.iter().map(|m| CheckpointEntry {
        origin: "hub".into(),
        label: m.clone(),
        source: format!("hub:{m}"),
    }));
    CheckpointsView {
        runs_dir: display_in(&ws.settings.runs_path(&ws.root), &ws.root),
        hub_cache: inv.hub_cache.as_ref().map(|p| p.display().to_string()),
        entries,
        detail: None,
        pull: None,
        chat: None,
    }
}

/// A path inside the workspace as `name/`, elsewhere in full.
fn display_in(p: &Path, root: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(rel) => format!("{}/", rel.display()),
        Err(_) => p.display().to_string(),
    }
}

/// Runs whose state changed between two reads of the workspace, as lines for the log:
/// `(is_bad, line)`, a failure or a pause (a NaN, say) being bad. A run new in `new` counts
/// when it is already past starting (one started elsewhere, or finished in between).
pub fn run_changes(old: &[RunInfo], new: &[RunInfo]) -> Vec<(bool, String)> {
    let before: std::collections::HashMap<&Path, State> =
        old.iter().map(|r| (r.dir.as_path(), r.state)).collect();
    new.iter()
        .filter_map(|r| {
            let was = before.get(r.dir.as_path()).copied();
            if was == Some(r.state) || (was.is_none() && r.state != State::Finished) {
                return None;
            }
            let name = format!("{}/{}", r.experiment, r.id);
            let progress = r
                .status
                .as_ref()
                .map(|s| format!(" at step {}/{}", s.step, s.total_steps))
                .unwrap_or_default();
            let why = r.reason().map(|m| format!(": {m}")).unwrap_or_default();
            Some(match r.state {
                State::Failed => (true, format!("{name} failed{progress}{why}")),
                State::Paused => (true, format!("{name} paused{progress}{why}")),
                State::Finished => {
                    let acc = r
                        .status
                        .as_ref()
                        .ok()
                        .and_then(|s| s.evals.eval_accuracy)
                        .map(|a| format!(", eval accuracy {:.1}%", a * 100.0))
                        .unwrap_or_default();
                    (false, format!("{name} finished{progress}{acc}"))
                }
                s => (false, format!("{name} {s}{progress}")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, state: State, died: Option<&str>) -> RunInfo {
        RunInfo {
            dir: PathBuf::from(format!("/ws/runs/mlp/{id}")),
            experiment: "mlp".into(),
            id: id.into(),
            status: Err("no status.json".into()),
            state,
            died: died.map(String::from),
            launch: None,
            job: None,
        }
    }

    #[test]
    fn changed_states_become_log_lines_and_unchanged_ones_do_not() {
        let old = [
            run("a", State::Running, None),
            run("b", State::Running, None),
            run("c", State::Queued, None),
            run("d", State::Finished, None),
        ];
        let new = [
            run("a", State::Finished, None),
            run("b", State::Failed, Some("killed (SIGKILL)")),
            run("c", State::Running, None),
            run("d", State::Finished, None),
            run("e", State::Queued, None),
        ];
        let lines = run_changes(&old, &new);
        assert_eq!(
            lines,
            [
                (false, "mlp/a finished".to_string()),
                (
                    true,
                    "mlp/b failed: the process died: killed (SIGKILL)".to_string()
                ),
                (false, "mlp/c running".to_string()),
            ]
        );
    }
}
