//! The Sampler pane's state and keys: which models can be sampled, the settings of the next
//! job (J/K pick one, H/L change it, Enter types a value), starting a job as a `descent
//! sample` process of its own, and following the jobs' `report.json` files.

use crate::runs::{self, RunInfo};
use crate::sampling::{self, Compare, JobInfo, JobState, Params, Report, SAMPLES_DIR};
use descent_models::diffusion::export::{self, MODEL_DIR};
use descent_models::diffusion::schedule::SamplerKind;
use descent_panes::chart::{ChartSeries, ChartView};
use descent_panes::{
    ImageView, PointsView, SampleJobRow, SampleJobView, SampleModeRow, SamplerModel, SamplerView,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Image samples per mode the pane can show (it draws as many as fit).
const SHOWN_SAMPLES: usize = 48;

/// The guidance sets H/L cycle through.
const COMPARES: &[&str] = &[
    "cfg,ag,linear-ag",
    "cfg,ag",
    "cfg",
    "ag",
    "linear-ag",
    "none",
    "none,cfg,ag,linear-ag",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    Compare,
    Scale,
    Threshold,
    AgCompare,
    AgRule,
    Estimate,
    Rescale,
    Steps,
    Sampler,
    N,
    Seed,
    Class,
    Prompt,
    Negative,
}

const SETTINGS: [Setting; 14] = [
    Setting::Compare,
    Setting::Scale,
    Setting::Threshold,
    Setting::AgCompare,
    Setting::AgRule,
    Setting::Estimate,
    Setting::Rescale,
    Setting::Steps,
    Setting::Sampler,
    Setting::N,
    Setting::Seed,
    Setting::Class,
    Setting::Prompt,
    Setting::Negative,
];

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Compare => "guidance",
            Setting::Scale => "scale w",
            Setting::Threshold => "AG γ̄",
            Setting::AgCompare => "AG cosine of",
            Setting::AgRule => "AG rule",
            Setting::Estimate => "LinearAG ε_u",
            Setting::Rescale => "rescale φ",
            Setting::Steps => "steps",
            Setting::Sampler => "sampler",
            Setting::N => "samples",
            Setting::Seed => "seed",
            Setting::Class => "class",
            Setting::Prompt => "prompt",
            Setting::Negative => "negative prompt",
        }
    }
}

/// A model the pane can sample, and the folder that holds it.
#[derive(Clone, Debug)]
struct Model {
    label: String,
    detail: String,
    /// What `descent sample` is given: a run's folder, `hub:ORG/NAME`, an opened path.
    checkpoint: String,
    classes: usize,
    /// A text-to-image pipeline: sampled with the prompt, not a class.
    text: bool,
}

/// Cached per job: the report's modification time and what was made of it.
struct Seen {
    modified: Option<std::time::SystemTime>,
    view: SampleJobView,
}

pub struct Sampler {
    pub params: Params,
    setting: usize,
    models: Vec<Model>,
    /// Folders opened by path (o) or sent from the Checkpoints pane, newest first.
    pub opened: Vec<PathBuf>,
    jobs: Vec<JobInfo>,
    job_selected: usize,
    seen: HashMap<PathBuf, Seen>,
    samples_dir: PathBuf,
    runs_dir: PathBuf,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            params: Params {
                modes: vec!["cfg".into(), "ag".into(), "linear-ag".into()],
                n: 64,
                ..Params::default()
            },
            setting: 0,
            models: Vec::new(),
            opened: Vec::new(),
            jobs: Vec::new(),
            job_selected: 0,
            seen: HashMap::new(),
            samples_dir: PathBuf::new(),
            runs_dir: PathBuf::new(),
        }
    }
}

/// What a folder holds for sampling: (classes, arch and shape in words, text-conditioned),
/// read from its `denoiser.json` or its pipeline's configs.
fn describe(dir: &Path) -> Option<(usize, String, bool)> {
    match export::config(dir) {
        Err(e) if descent_models::diffusion::sd::is_pipeline(dir) => {
            Some((0, format!("Stable Diffusion, unreadable: {e}"), true))
        }
        Err(_) => None,
        Ok(export::Config::Other(class)) => {
            Some((0, format!("{class} (not sampled by descent)"), false))
        }
        Ok(export::Config::StableDiffusion(info)) => {
            let img = info.image_shape();
            Some((
                1,
                format!(
                    "SD {}×{} px · {:.0}M params",
                    img[1],
                    img[2],
                    info.param_count() as f64 / 1e6
                ),
                true,
            ))
        }
        Ok(export::Config::Denoiser(saved)) => {
            let spec = saved.spec;
            let shape: Vec<String> = spec.sample_shape.iter().map(|d| d.to_string()).collect();
            let arch = serde_json::json!(spec.arch);
            Some((
                spec.classes,
                format!(
                    "{} {} · {} classes",
                    arch.as_str().unwrap_or_default(),
                    shape.join("×"),
                    spec.classes
                ),
                false,
            ))
        }
    }
}

/// The folder a run is sampled from, as `descent sample` picks it: its exported model, else
/// its newest checkpoint (whether either is a diffusion model is for `describe` to say).
fn run_model(run: &RunInfo) -> Option<(PathBuf, String)> {
    let model = run.dir.join(MODEL_DIR);
    if model.join("model_index.json").is_file() {
        return Some((model, "exported model/".into()));
    }
    let (step, dir) = runs::checkpoint::list(&run.dir).pop()?;
    Some((dir, format!("checkpoint step {step}")))
}

impl Sampler {
    /// Re-lists the models from the workspace's runs, the pipelines in the hub cache and the
    /// opened folders.
    pub fn set_sources(&mut self, inv: &crate::inventory::Inventory, root: &Path, runs_dir: &Path) {
        let runs = &inv.runs;
        self.samples_dir = root.join(SAMPLES_DIR);
        self.runs_dir = runs_dir.to_path_buf();
        let mut models = Vec::new();
        for r in runs {
            let Some((path, what)) = run_model(r) else {
                continue;
            };
            let Some((classes, desc, text)) = describe(&path) else {
                continue;
            };
            models.push(Model {
                label: format!("{}/{}", r.experiment, r.id),
                detail: format!("{} run · {what} · {desc}", r.state),
                checkpoint: r.dir.display().to_string(),
                classes,
                text,
            });
        }
        for repo in &inv.hub_models {
            let spec = format!("hub:{repo}");
            let Ok(path) = crate::sources::resolve(
                &spec,
                crate::sources::RepoKind::Model,
                inv.hub_cache.as_deref(),
            ) else {
                continue;
            };
            if !path.join("model_index.json").is_file() {
                continue;
            }
            let Some((classes, desc, text)) = describe(&path) else {
                continue;
            };
            models.push(Model {
                label: spec.clone(),
                detail: format!("hub cache · {desc}"),
                checkpoint: spec,
                classes,
                text,
            });
        }
        for p in &self.opened {
            let (classes, desc, text) =
                describe(p).unwrap_or((0, "not a diffusion model folder".into(), false));
            models.push(Model {
                label: p.display().to_string(),
                detail: format!("opened · {desc}"),
                checkpoint: p.display().to_string(),
                classes,
                text,
            });
        }
        self.models = models;
    }

    /// Re-lists the jobs and re-reads the reports that changed (by modification time; a
    /// finished job's report is read once); returns whether anything did.
    pub fn refresh_jobs(&mut self) -> bool {
        let selected = self.jobs.get(self.job_selected).map(|j| j.id.clone());
        let mut old: HashMap<PathBuf, JobInfo> =
            self.jobs.drain(..).map(|j| (j.dir.clone(), j)).collect();
        let mut changed = false;
        for (id, dir) in sampling::job_dirs(&self.samples_dir) {
            let modified = std::fs::metadata(dir.join(sampling::REPORT))
                .and_then(|m| m.modified())
                .ok();
            let fresh = self.seen.get(&dir).is_some_and(|s| s.modified == modified);
            let job = match old.remove(&dir) {
                Some(j) if fresh => j,
                _ => {
                    changed = true;
                    let j = JobInfo {
                        report: Report::read(&dir),
                        dir: dir.clone(),
                        id,
                    };
                    let before = self.seen.get(&dir).map(|s| &s.view);
                    let view = job_view(&j, before);
                    self.seen.insert(dir, Seen { modified, view });
                    j
                }
            };
            self.jobs.push(job);
        }
        changed |= !old.is_empty();
        for gone in old.keys() {
            self.seen.remove(gone);
        }
        if let Some(id) = selected
            && let Some(i) = self.jobs.iter().position(|j| j.id == id)
        {
            self.job_selected = i;
        }
        self.job_selected = self.job_selected.min(self.jobs.len().saturating_sub(1));
        changed
    }

    fn model(&self, selected: usize) -> Option<&Model> {
        self.models.get(selected)
    }

    /// Moves the settings cursor.
    pub fn move_setting(&mut self, delta: isize) {
        let n = SETTINGS.len() as isize;
        self.setting = (self.setting as isize + delta).clamp(0, n - 1) as usize;
    }

    pub fn move_job(&mut self, delta: isize) {
        let max = self.jobs.len().saturating_sub(1) as isize;
        self.job_selected = (self.job_selected as isize + delta).clamp(0, max.max(0)) as usize;
    }

    /// H/L: the selected setting's previous or next value.
    pub fn step_setting(&mut self, up: bool, model: usize) {
        let classes = self.model(model).map_or(0, |m| m.classes);
        let p = &mut self.params;
        let sign = if up { 1.0 } else { -1.0 };
        let cycle = |list: &[&str], cur: &str| -> String {
            let i = list.iter().position(|v| *v == cur).unwrap_or(0) as isize;
            let n = list.len() as isize;
            list[(i + if up { 1 } else { -1 }).rem_euclid(n) as usize].to_string()
        };
        match SETTINGS[self.setting] {
            Setting::Compare => {
                p.modes = cycle(COMPARES, &p.modes.join(","))
                    .split(',')
                    .map(String::from)
                    .collect();
            }
            Setting::Scale => p.scale = (p.scale + 0.5 * sign).max(0.0),
            Setting::Threshold => {
                p.ag_threshold = ((p.ag_threshold + 0.005 * sign) * 1000.0).round() / 1000.0;
            }
            Setting::AgCompare => {
                p.ag_compare = match p.ag_compare {
                    Compare::Eps => Compare::X0,
                    Compare::X0 => Compare::Eps,
                }
            }
            Setting::AgRule => p.ag_per_batch = !p.ag_per_batch,
            Setting::Estimate => p.estimate = cycle(&["cached", "affine"], &p.estimate),
            Setting::Rescale => {
                p.rescale = ((p.rescale + 0.1 * sign).clamp(0.0, 1.0) * 10.0).round() / 10.0
            }
            Setting::Steps => {
                p.steps = if up {
                    p.steps + 10
                } else {
                    p.steps.saturating_sub(10).max(1)
                }
            }
            Setting::Sampler => {
                let names: Vec<String> = std::iter::once("model's".to_string())
                    .chain(SamplerKind::ALL.iter().map(|k| k.to_string()))
                    .collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let cur = p.sampler.clone().unwrap_or_else(|| "model's".into());
                let next = cycle(&refs, &cur);
                p.sampler = (next != "model's").then_some(next);
            }
            Setting::N => {
                p.n = if up {
                    (p.n * 2).min(4096)
                } else {
                    (p.n / 2).max(1)
                }
            }
            Setting::Seed => {
                p.seed = if up {
                    p.seed + 1
                } else {
                    p.seed.saturating_sub(1)
                }
            }
            Setting::Class => {
                let n = classes as i64 + 1;
                let cur = p.class.map_or(0, |c| c as i64 + 1);
                let next = (cur + if up { 1 } else { -1 }).rem_euclid(n.max(1));
                p.class = (next > 0).then(|| (next - 1) as u32);
            }
            // Text is typed (Enter); H/L leave it.
            Setting::Prompt | Setting::Negative => {}
        }
    }

    /// The prompt for Enter: (label, current value).
    pub fn prompt(&self) -> (String, String) {
        let s = SETTINGS[self.setting];
        let current = match s {
            Setting::Prompt => self.params.prompt.clone().unwrap_or_default(),
            _ => value(&self.params, s),
        };
        (format!("{} for the next job", s.name()), current)
    }

    /// The answer to the prompt.
    pub fn set_typed(&mut self, text: &str) -> Result<(), String> {
        let s = SETTINGS[self.setting];
        let t = text.trim();
        let num = |t: &str| {
            t.parse::<f64>()
                .map_err(|_| format!("{}: {t:?} is not a number", s.name()))
        };
        let int = |t: &str| {
            t.parse::<u64>()
                .map_err(|_| format!("{}: {t:?} is not a whole number", s.name()))
        };
        let mut p = self.params.clone();
        match s {
            Setting::Compare => p.modes = t.split(',').map(|m| m.trim().to_string()).collect(),
            Setting::Scale => p.scale = num(t)?,
            Setting::Threshold => p.ag_threshold = num(t)?,
            Setting::Rescale => p.rescale = num(t)?,
            Setting::Steps => p.steps = int(t)? as usize,
            Setting::N => p.n = int(t)? as usize,
            Setting::Seed => p.seed = int(t)?,
            Setting::Class => {
                p.class = if t == "all" || t.is_empty() {
                    None
                } else {
                    Some(int(t)? as u32)
                }
            }
            Setting::Sampler => {
                p.sampler = if t.is_empty() || t == "model's" {
                    None
                } else {
                    Some(SamplerKind::parse(t)?.to_string())
                }
            }
            Setting::AgCompare => {
                p.ag_compare = match t {
                    "eps" => Compare::Eps,
                    "x0" => Compare::X0,
                    _ => return Err(format!("AG cosine of: {t:?}; expected eps or x0")),
                }
            }
            Setting::AgRule => {
                p.ag_per_batch = match t {
                    "per batch" | "batch" => true,
                    "per sample" | "sample" => false,
                    _ => return Err(format!("AG rule: {t:?}; expected per sample or per batch")),
                }
            }
            Setting::Estimate => p.estimate = t.to_string(),
            // Kept as typed: leading spaces can matter to a tokenizer.
            Setting::Prompt => p.prompt = (!text.is_empty()).then(|| text.to_string()),
            Setting::Negative => p.negative_prompt = text.to_string(),
        }
        // The prompt and the class are for different models; `start` keeps the right one.
        let checked = Params {
            class: if p.prompt.is_some() { None } else { p.class },
            ..p.clone()
        };
        checked.check()?;
        self.params = p;
        Ok(())
    }

    /// x: stops the selected job if it is running, and records that in its report.
    pub fn cancel_selected(&mut self) -> Result<String, String> {
        let j = self.jobs.get(self.job_selected).ok_or("no job selected")?;
        let mut r = j.report.clone()?;
        if r.effective_state().0 != JobState::Running {
            return Err(format!("{} is not running", j.id));
        }
        // SAFETY: a plain kill(2) on the job's own pid, checked alive just above.
        unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGTERM) };
        for _ in 0..20 {
            if matches!(
                runs::process::check(r.pid, r.process.as_ref()),
                runs::process::Verdict::Dead(_)
            ) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        r.state = JobState::Failed;
        r.message = Some("cancelled from the TUI".into());
        r.finished = Some(runs::now());
        r.write(&j.dir)
            .map_err(|e| format!("{}: {e}", j.dir.display()))?;
        let id = j.id.clone();
        self.refresh_jobs();
        Ok(format!("cancelled {id}"))
    }

    /// Starts `descent sample` on the selected model; returns what to tell the user.
    pub fn start(&mut self, root: &Path, model: usize) -> Result<String, String> {
        let m = self
            .model(model)
            .ok_or("no model selected; train a diffusion experiment first (Runs pane, r)")?
            .clone();
        let mut p = self.params.clone();
        p.checkpoint = m.checkpoint.clone();
        if m.text {
            p.class = None;
            if p.prompt.as_deref().is_none_or(|t| t.trim().is_empty()) {
                return Err(format!(
                    "{} is a text-to-image pipeline: select \"prompt\" (J/K) and type one (Enter)",
                    m.label
                ));
            }
        } else {
            p.prompt = None;
            p.negative_prompt.clear();
        }
        if let Some(c) = p.class
            && m.classes > 0
            && c as usize >= m.classes
        {
            return Err(format!("class {c}: {} has {} classes", m.label, m.classes));
        }
        p.check()?;
        let label = crate::cli_sample::label(&p.checkpoint);
        let dir = sampling::new_job_dir(&self.samples_dir, &label).map_err(|e| {
            format!(
                "cannot create a job folder in {}: {e}",
                self.samples_dir.display()
            )
        })?;
        let argv = crate::cli_sample::argv(&p);
        let pid = crate::cli_sample::spawn_argv(root, &argv, &dir)
            .map_err(|e| format!("cannot start descent sample: {e:#}"))?;
        self.refresh_jobs();
        let id = dir
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        if let Some(i) = self.jobs.iter().position(|j| j.id == id) {
            self.job_selected = i;
        }
        Ok(format!("sampling {} (pid {pid})", m.label))
    }

    pub fn view(&self) -> SamplerView {
        SamplerView {
            models: self
                .models
                .iter()
                .map(|m| SamplerModel {
                    label: m.label.clone(),
                    detail: m.detail.clone(),
                })
                .collect(),
            settings: SETTINGS
                .iter()
                .map(|&s| (s.name().to_string(), value(&self.params, s)))
                .collect(),
            setting_selected: self.setting,
            jobs: self
                .jobs
                .iter()
                .map(|j| {
                    let (state, failed) = match &j.report {
                        Ok(r) => state_of(r),
                        Err(_) => ("unreadable".into(), true),
                    };
                    SampleJobRow {
                        id: j.id.clone(),
                        state,
                        failed,
                    }
                })
                .collect(),
            job_selected: self.job_selected,
            job: self.jobs.get(self.job_selected).and_then(|j| {
                let mut v = self.seen.get(&j.dir)?.view.clone();
                // A running job's process may have died since its report last changed.
                if let Ok(r) = &j.report
                    && r.state == JobState::Running
                {
                    (v.state, v.failed) = state_of(r);
                    if v.failed {
                        v.message = r.effective_state().1;
                        v.progress = None;
                    }
                }
                Some(v)
            }),
            samples_dir: self.samples_dir.display().to_string(),
            runs_dir: self.runs_dir.display().to_string(),
        }
    }
}

fn value(p: &Params, s: Setting) -> String {
    match s {
        Setting::Compare => p.modes.join(","),
        Setting::Scale => format!("{}", p.scale),
        Setting::Threshold => format!("{}", p.ag_threshold),
        Setting::AgCompare => crate::cli_sample::compare_name(p.ag_compare).into(),
        Setting::AgRule => if p.ag_per_batch {
            "per batch"
        } else {
            "per sample"
        }
        .into(),
        Setting::Estimate => p.estimate.clone(),
        Setting::Rescale => format!("{}", p.rescale),
        Setting::Steps => p.steps.to_string(),
        Setting::Sampler => p.sampler.clone().unwrap_or_else(|| "model's".into()),
        Setting::N => p.n.to_string(),
        Setting::Seed => p.seed.to_string(),
        Setting::Class => p.class.map_or("all, in turn".into(), |c| c.to_string()),
        Setting::Prompt => p.prompt.clone().unwrap_or_else(|| "— (pipelines)".into()),
        Setting::Negative => p.negative_prompt.clone(),
    }
}

fn state_of(r: &Report) -> (String, bool) {
    match r.effective_state() {
        (JobState::Running, _) => (
            format!("running {}%", r.done_steps * 100 / r.total_steps.max(1)),
            false,
        ),
        (JobState::Finished, _) => ("finished".into(), false),
        (JobState::Failed, _) => ("failed".into(), true),
    }
}

/// A PNG as the pane's image data.
fn load_png(path: &Path, label: &str) -> Option<ImageView> {
    let img = image::open(path).ok()?.to_rgb8();
    Some(ImageView {
        label: label.to_string(),
        width: img.width(),
        height: img.height(),
        rgb: img.into_raw(),
    })
}

fn load_points(path: &Path, label: &str) -> Option<PointsView> {
    let text = std::fs::read_to_string(path).ok()?;
    let points: Vec<(f64, f64, u32)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
            ))
        })
        .collect();
    let flat: Vec<f32> = points
        .iter()
        .flat_map(|p| [p.0 as f32, p.1 as f32])
        .collect();
    let ((x0, x1), (y0, y1)) = sampling::render::bounds(&flat);
    Some(PointsView {
        label: label.to_string(),
        points,
        bounds: ((x0 as f64, x1 as f64), (y0 as f64, y1 as f64)),
    })
}

/// The pane's view of a job. A mode's files do not change once its results are in the
/// report, so the samples already loaded for `before` (the same job) are kept, not reread.
fn job_view(j: &JobInfo, before: Option<&SampleJobView>) -> SampleJobView {
    let r = match &j.report {
        Ok(r) => r,
        Err(e) => {
            return SampleJobView {
                id: j.id.clone(),
                state: "unreadable".into(),
                failed: true,
                message: Some(e.clone()),
                ..Default::default()
            };
        }
    };
    let (state, failed) = state_of(r);
    let (_, why) = r.effective_state();
    let p = &r.params;
    let mut facts = vec![
        (
            "model".to_string(),
            r.model_dir
                .as_ref()
                .map_or(p.checkpoint.clone(), |d| d.display().to_string()),
        ),
        (
            "sampling".into(),
            format!(
                "{} × {} steps, {} samples (seeds {}…), {}",
                r.sampler.clone().unwrap_or_else(|| "?".into()),
                p.steps,
                p.n,
                p.seed,
                match &p.prompt {
                    Some(_) => r.dtype.as_deref().unwrap_or("f32").to_string(),
                    None => format!(
                        "class {}",
                        p.class.map_or("in turn".into(), |c| c.to_string())
                    ),
                }
            ),
        ),
        (
            "guidance".into(),
            format!(
                "w = {}, φ = {}, γ̄ = {} on {} ({}), LinearAG ε_u {}",
                p.scale,
                p.rescale,
                p.ag_threshold,
                crate::cli_sample::compare_name(p.ag_compare),
                if p.ag_per_batch {
                    "per batch"
                } else {
                    "per sample"
                },
                p.estimate
            ),
        ),
    ];
    if let Some(t) = &p.prompt {
        facts.insert(1, ("prompt".into(), t.clone()));
        if !p.negative_prompt.is_empty() {
            facts.insert(2, ("negative".into(), p.negative_prompt.clone()));
        }
    }
    if !r.ignored_keys.is_empty() {
        facts.push(("ignored keys".into(), r.ignored_keys.join(", ")));
    }
    for n in &r.notes {
        facts.push(("note".into(), n.clone()));
    }
    let modes: Vec<SampleModeRow> = r
        .modes
        .iter()
        .map(|m| {
            let stops: Vec<usize> = m.stopped_at.iter().flatten().copied().collect();
            SampleModeRow {
                guidance: m.guidance.clone(),
                nfe_total: m.nfe_total,
                nfe_per_sample: m.nfe_total as f64 / m.nfe.len().max(1) as f64,
                nfe_vs_cfg: m.nfe_vs_cfg,
                seconds: m.seconds,
                distance_to_cfg: m.distance_to_cfg,
                judged_accuracy: m.judged_accuracy,
                stopped: (!stops.is_empty()).then(|| {
                    (
                        stops.iter().sum::<usize>() as f64 / stops.len() as f64,
                        stops.len(),
                    )
                }),
                estimate_error: m.estimate_error,
            }
        })
        .collect();
    let mut images = before.map_or(Vec::new(), |b| b.images.clone());
    let mut points = before.map_or(Vec::new(), |b| b.points.clone());
    // Modes with samples to show, in order; the first `loaded` of them are in `before`.
    let loaded = images.len() + points.len();
    let drawn = r.modes.iter().filter_map(|m| Some((m, m.grid.as_ref()?)));
    for (m, g) in drawn.skip(loaded) {
        let path = j.dir.join(g);
        if g.ends_with("scatter.png") {
            if let Some(p) = load_points(&j.dir.join(&m.guidance).join("points.csv"), &m.guidance) {
                points.push(p);
            }
        } else if path.is_file() {
            let set: Vec<ImageView> = (0..m.nfe.len().min(SHOWN_SAMPLES))
                .map_while(|i| {
                    load_png(
                        &j.dir.join(&m.guidance).join(format!("sample-{i:04}.png")),
                        &m.guidance,
                    )
                })
                .collect();
            images.push(set);
        }
    }
    SampleJobView {
        id: j.id.clone(),
        state,
        failed,
        facts,
        message: why,
        progress: (r.state == JobState::Running).then_some((r.done_steps, r.total_steps)),
        cosine: cosine_chart(r),
        modes,
        images,
        points,
    }
}

/// The mean per-step cosine of each mode that computed one, with the γ̄ line; markers where
/// AG-type modes stopped guiding (mean step).
fn cosine_chart(r: &Report) -> Option<ChartView> {
    let mut series = Vec::new();
    let mut markers = Vec::new();
    let steps = r.params.steps;
    for m in &r.modes {
        let pts: Vec<(f64, f64)> = m
            .cosines
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let v: Vec<f64> = row.iter().flatten().copied().collect();
                (!v.is_empty()).then(|| (i as f64 + 1.0, v.iter().sum::<f64>() / v.len() as f64))
            })
            .collect();
        if !pts.is_empty() && m.guidance != "none" {
            series.push(ChartSeries::from_points(
                &format!("{} mean cos", m.guidance),
                &pts,
            ));
        }
        markers.extend(m.stopped_at.iter().flatten().map(|&s| s as f64));
    }
    if series.is_empty() {
        return None;
    }
    series.push(ChartSeries::from_points(
        "γ̄",
        &[
            (1.0, r.params.ag_threshold),
            (steps.max(2) as f64, r.params.ag_threshold),
        ],
    ));
    markers.sort_by(f64::total_cmp);
    markers.dedup();
    Some(ChartView {
        title: "cos(ε_c, ε_u) per step · ▾ where AG stopped".into(),
        series,
        log_y: false,
        smoothing: 0.0,
        x_label: "step".into(),
        markers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: JobState, pid: u32) -> Report {
        Report {
            state,
            message: None,
            pid,
            process: None,
            started: 0.0,
            finished: None,
            params: Params::default(),
            model_dir: None,
            sampler: Some("ddim".into()),
            sample_shape: vec![2],
            image_shape: vec![],
            dtype: None,
            notes: vec![],
            class_names: vec![],
            seeds: vec![0],
            classes: vec![0],
            ignored_keys: vec![],
            judge_val_accuracy: None,
            done_steps: 10,
            total_steps: 40,
            modes: vec![],
        }
    }

    #[test]
    fn a_running_job_whose_process_is_gone_shows_as_failed_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let samples = dir.path().join(SAMPLES_DIR);
        let job = samples.join("20261201-000000-toy");
        std::fs::create_dir_all(&job).unwrap();
        // A pid no process has (above Linux's pid_max).
        report(JobState::Running, 4_000_000_000)
            .write(&job)
            .unwrap();
        let mut s = Sampler::default();
        s.set_sources(&Default::default(), dir.path(), &dir.path().join("runs"));
        assert!(s.refresh_jobs());
        let v = s.view();
        assert_eq!(v.jobs[0].state, "failed");
        let detail = v.job.unwrap();
        assert!(detail.failed);
        assert!(detail.message.unwrap().contains("died"));
        // Unchanged reports are not read again; a new job is noticed.
        assert!(!s.refresh_jobs());
        let second = samples.join("20261201-000100-toy");
        std::fs::create_dir_all(&second).unwrap();
        report(JobState::Finished, 1).write(&second).unwrap();
        assert!(s.refresh_jobs());
        assert_eq!(s.view().jobs.len(), 2);
        assert_eq!(s.view().jobs[0].state, "finished");
    }

    #[test]
    fn a_modes_samples_are_read_once_as_the_job_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join(SAMPLES_DIR).join("20261201-000000-toy");
        let mode = |name: &str| {
            std::fs::create_dir_all(job.join(name)).unwrap();
            std::fs::write(job.join(name).join("points.csv"), "x,y,class\n0.5,1.5,1\n").unwrap();
            sampling::ModeReport {
                guidance: name.into(),
                nfe: vec![10],
                grid: Some(format!("{name}/scatter.png")),
                ..Default::default()
            }
        };
        let mut r = report(JobState::Running, std::process::id());
        r.modes.push(mode("cfg"));
        r.write(&job).unwrap();
        let mut s = Sampler::default();
        s.set_sources(&Default::default(), dir.path(), &dir.path().join("runs"));
        s.refresh_jobs();
        assert_eq!(s.view().job.unwrap().points.len(), 1);
        // The first mode's file is gone: had it been read again, its plot would be too.
        std::fs::remove_file(job.join("cfg/points.csv")).unwrap();
        r.modes.push(mode("ag"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        r.write(&job).unwrap();
        assert!(s.refresh_jobs());
        let points = s.view().job.unwrap().points;
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].label, "cfg");
        assert_eq!(points[1].points, vec![(0.5, 1.5, 1)]);
    }

    #[test]
    fn h_and_l_walk_every_setting_within_its_range() {
        let mut s = Sampler::default();
        for _ in 0..SETTINGS.len() {
            for _ in 0..30 {
                s.step_setting(false, 0);
            }
            for _ in 0..3 {
                s.step_setting(true, 0);
            }
            s.move_setting(1);
        }
        s.params.check().unwrap();
        assert!(s.params.steps >= 1 && s.params.n >= 1);
        assert!((0.0..=1.0).contains(&s.params.rescale));
    }

    #[test]
    fn a_pipeline_needs_a_typed_prompt_and_a_class_model_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sampler {
            samples_dir: dir.path().join(SAMPLES_DIR),
            ..Sampler::default()
        };
        s.models = vec![Model {
            label: "sd".into(),
            detail: String::new(),
            checkpoint: dir.path().display().to_string(),
            classes: 1,
            text: true,
        }];
        let e = s.start(dir.path(), 0).unwrap_err();
        assert!(e.contains("select \"prompt\""), "{e}");
        assert!(
            !s.samples_dir.exists(),
            "no job folder for a refused request"
        );
        s.setting = SETTINGS.iter().position(|&k| k == Setting::Class).unwrap();
        s.set_typed("1").unwrap();
        s.setting = SETTINGS.iter().position(|&k| k == Setting::Prompt).unwrap();
        assert_eq!(s.prompt().1, "", "an unset prompt starts empty");
        // Typed as it is, even with a class chosen for class models.
        s.set_typed(" a cat ").unwrap();
        assert_eq!(s.params.prompt.as_deref(), Some(" a cat "));
        assert_eq!(s.params.class, Some(1));
        s.set_typed("").unwrap();
        assert_eq!(s.params.prompt, None);
    }
}
