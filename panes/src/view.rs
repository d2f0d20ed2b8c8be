//! The plain data each frame is drawn from. The application owns an [`AppView`] and updates it
//! as its sources change; drawing never computes anything but layout.

use crate::{Pane, Theme};

#[derive(Clone, Debug, Default)]
pub struct AppView {
    pub pane: Pane,
    pub theme: Theme,
    pub status: StatusView,
    pub workspace: WorkspaceView,
    pub datasets: DatasetsView,
    pub checkpoints: CheckpointsView,
    pub system: SystemView,
    pub sampler: SamplerView,
    pub log: Vec<LogLine>,
    /// The list filter of the current pane; `Some` while one is set.
    pub filter: Option<FilterView>,
    /// The help overlay's rows while it is open.
    pub help: Option<Vec<HelpRow>>,
    /// Charts of the selected run (loss, gradient norm, learning rate, accuracy).
    pub run_charts: Vec<crate::chart::ChartView>,
    /// Per-parameter-tensor gradient norms of the selected run over time.
    pub run_heatmap: Option<crate::chart::HeatmapView>,
    /// The RL pane's charts and rollout viewer for its selected run.
    pub rl: RlView,
    /// The Runs pane's gradient-probe view of the selected run, while it is shown instead of
    /// the training charts.
    pub probes: Option<ProbesView>,
    /// The Runs pane's sweep view (`w`): the selected run's sweep, its members ranked.
    pub sweep: Option<SweepView>,
    /// A one-line question being answered (e.g. a new learning rate).
    pub prompt: Option<PromptView>,
    /// The outcome of the last action, shown in the status bar until the next one.
    pub notice: Option<String>,
}

/// A sweep's members ranked by its metric, best first.
#[derive(Clone, Debug, Default)]
pub struct SweepView {
    pub id: String,
    pub metric: String,
    /// `min` or `max`.
    pub goal: String,
    /// e.g. `8 members: 3 finished, 2 running, 3 queued`.
    pub summary: String,
    pub rows: Vec<SweepMemberRow>,
}

#[derive(Clone, Debug, Default)]
pub struct SweepMemberRow {
    /// 1 for the best; `None` until the member has a value.
    pub rank: Option<usize>,
    pub member: usize,
    pub run: String,
    pub state: String,
    pub value: Option<f64>,
    pub overrides: String,
    /// The run selected in the runs table.
    pub selected: bool,
}

/// The gradient probes of one run: their charts, the EL2N scores, the latest opposing-signal
/// probe and the Hessian spectrum computed for it.
#[derive(Clone, Debug, Default)]
pub struct ProbesView {
    /// m-coherence, noise scale, sharpness against the edge, opposing-signal group losses.
    pub charts: Vec<crate::chart::ChartView>,
    /// Which probes the run records, or how to turn them on.
    pub note: String,
    /// The batch-size / learning-rate hint the noise scale gives, labelled as a hint.
    pub hint: Option<String>,
    pub el2n: Option<El2nView>,
    pub opposing: Option<OpposingView>,
    pub spectrum: Option<SpectrumView>,
    /// Why the spectrum is absent, or that it is being computed.
    pub spectrum_note: String,
}

/// One training example as a probe shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExampleView {
    pub row: usize,
    pub label: String,
    /// The score or loss change that ranks it.
    pub value: f64,
    pub image: Option<ImageView>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct El2nView {
    /// The checkpoint the scores come from.
    pub step: u64,
    pub scored: usize,
    /// Counts of mean scores per bin over [0, √2].
    pub histogram: Vec<u64>,
    pub hardest: Vec<ExampleView>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpposingView {
    pub step: u64,
    pub rises: Vec<ExampleView>,
    pub falls: Vec<ExampleView>,
}

#[derive(Clone, Debug)]
pub struct SpectrumView {
    pub step: u64,
    /// log density over λ.
    pub chart: crate::chart::ChartView,
    pub summary: String,
}

#[derive(Clone, Debug, Default)]
pub struct RlView {
    /// Reward, accuracy, KL, entropy, length, kept fractions, Var(A), gradient norm.
    pub charts: Vec<crate::chart::ChartView>,
    /// The rollouts of the step being read.
    pub rollouts: Option<RolloutView>,
    /// Why there are none (no run yet, no step logged yet, an unreadable line).
    pub note: String,
}

/// One prompt of one GRPO step with its completions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RolloutView {
    pub step: u64,
    /// Which logged step this is (1-based) of how many, and whether the viewer follows the
    /// newest.
    pub position: (usize, usize),
    pub following: bool,
    /// Which prompt of the step (1-based) of how many.
    pub group: (usize, usize),
    pub prompt: String,
    pub answer: String,
    pub completions: Vec<CompletionView>,
    /// The largest |A|·H of the step, which the colours scale to.
    pub max_score: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompletionView {
    /// (text, |A|·H, kept by D³S's token level).
    pub tokens: Vec<(String, f64, bool)>,
    pub reward: f64,
    /// Each reward function's score (`None`: none or failed).
    pub rewards: Vec<(String, Option<f64>)>,
    pub advantage: f64,
    /// Kept by D³S's sample level.
    pub kept: bool,
    pub truncated: bool,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct PromptView {
    pub label: String,
    pub text: String,
}

/// One run, as the Runs pane lists it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunRow {
    pub experiment: String,
    pub id: String,
    /// `running`, `paused`, `finished`, `failed`, …
    pub state: String,
    pub live: bool,
    pub step: u64,
    pub total: u64,
    pub loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub examples_per_s: Option<f64>,
    /// Language models: tokens per second (shown instead of examples).
    pub tokens_per_s: Option<f64>,
    /// Remaining time, e.g. `3m12s`, while running.
    pub eta: Option<String>,
    pub device: String,
    /// Why it paused or failed, or why it waits.
    pub message: Option<String>,
    /// The sweep it is a member of, its place there (from 1) and the keys it sets.
    pub sweep: Option<String>,
    pub member: Option<usize>,
    pub overrides: String,
    /// Its Slurm job and what Slurm says of it, e.g. `slurm 12_3 RUNNING (on node3)`.
    pub job: Option<String>,
}

impl Default for Theme {
    fn default() -> Self {
        Theme { color: true }
    }
}

#[derive(Clone, Debug, Default)]
pub struct FilterView {
    pub text: String,
    /// Typing goes into the filter (rather than to the key bindings).
    pub editing: bool,
}

#[derive(Clone, Debug, Default)]
pub struct StatusView {
    pub workspace: String,
    /// e.g. `cpu (auto)`.
    pub device: String,
    pub active_runs: usize,
    pub config_errors: usize,
    /// `watching` or `polling`.
    pub watch_mode: String,
    /// A problem with the workspace as a whole (e.g. its folder was deleted).
    pub alert: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct WorkspaceView {
    pub experiments: Vec<ExperimentRow>,
    /// Every config error, rendered `file:line:col: message`.
    pub errors: Vec<String>,
    pub runs_dir: String,
    /// Every run, grouped by experiment, newest first.
    pub runs: Vec<RunRow>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentRow {
    pub name: String,
    /// `supervised`, `diffusion`, `pretrain`, `grpo`; empty when the file never parsed.
    pub kind: String,
    /// Path relative to the workspace.
    pub file: String,
    /// One line: data, model, optimiser, steps.
    pub summary: String,
    /// Resolved settings, as (key, value) rows for the detail view.
    pub details: Vec<(String, String)>,
    /// Errors of the file as it is now; the last good version stays in force meanwhile.
    pub errors: Vec<String>,
    /// Whether a valid version exists (the current one, or the last good one).
    pub in_force: bool,
}

#[derive(Clone, Debug, Default)]
pub struct FileRow {
    pub name: String,
    /// `None` for a folder.
    pub bytes: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct DatasetsView {
    /// Built-in datasets: (name, description, parameters with defaults).
    pub builtins: Vec<(String, String, String)>,
    pub data_dir: String,
    pub files: Vec<FileRow>,
    /// `None` when no hub cache location is known.
    pub hub_cache: Option<String>,
    pub hub_datasets: Vec<String>,
    /// Files and folders the user opened by path, newest first.
    pub opened: Vec<String>,
    /// What the selected dataset holds, once read.
    pub detail: Option<DatasetDetail>,
    /// A hub download in progress or just ended.
    pub pull: Option<PullView>,
}

/// One dataset, as read: statistics, classes, image samples and a page of rows.
#[derive(Clone, Debug, Default)]
pub struct DatasetDetail {
    /// Which list row this belongs to (a stale detail is not drawn for another row).
    pub key: String,
    pub loading: bool,
    pub error: Option<String>,
    pub info: Vec<(String, String)>,
    /// name, type, nulls, min, max, mean, std, distinct — already formatted.
    pub columns: Vec<[String; 8]>,
    pub label: Option<String>,
    pub classes: Vec<(String, u64)>,
    pub classes_more: Option<String>,
    pub images: Vec<ImageView>,
    pub notes: Vec<String>,
    pub row_start: u64,
    /// The first column shown in the statistics and rows tables.
    pub col_offset: usize,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageView {
    pub label: String,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct PullView {
    pub repo: String,
    pub file: String,
    pub done: u64,
    pub total: u64,
    pub bytes_per_s: f64,
    pub files_done: usize,
    pub files: usize,
    /// "downloading", "finished: PATH", "failed: WHY", "cancelled"
    pub state: String,
}

#[derive(Clone, Debug, Default)]
pub struct CheckpointsView {
    pub runs_dir: String,
    pub hub_cache: Option<String>,
    /// Every checkpoint the pane lists: run checkpoints, opened paths, hub models.
    pub entries: Vec<CheckpointEntry>,
    pub detail: Option<CheckpointDetail>,
    pub pull: Option<PullView>,
    /// The talk box: a message to a language model and its reply.
    pub chat: Option<ChatView>,
}

/// A message sent to a language-model folder and the reply as it streams in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatView {
    pub model: String,
    pub prompt: String,
    /// The model's chat template was applied.
    pub templated: bool,
    pub reply: String,
    /// "writing…", "done" or "failed".
    pub state: String,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointEntry {
    /// "run", "opened" or "hub".
    pub origin: String,
    pub label: String,
    /// What to open: a path, or `hub:ORG/NAME`.
    pub source: String,
}

#[derive(Clone, Debug, Default)]
pub struct CheckpointDetail {
    pub key: String,
    pub loading: bool,
    pub error: Option<String>,
    pub summary: Vec<(String, String)>,
    pub tree: Vec<TreeRow>,
    pub tree_selected: usize,
    pub stats: Option<TensorStatsView>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TreeRow {
    pub depth: usize,
    pub name: String,
    /// dtype and shape for a tensor, "N tensors" for a group.
    pub what: String,
    pub params: String,
    pub bytes: String,
    /// `Some(expanded)` for groups.
    pub expanded: Option<bool>,
}

#[derive(Clone, Debug, Default)]
pub struct TensorStatsView {
    pub name: String,
    pub lines: Vec<(String, String)>,
    pub histogram: Vec<u64>,
    pub range: (f64, f64),
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct SystemView {
    pub host: String,
    pub os: String,
    pub cpu_brand: String,
    pub cpus: usize,
    /// Whole-machine CPU use in percent, once two samples exist.
    pub cpu_usage: Option<f32>,
    pub load_avg: [f64; 3],
    pub mem_used: u64,
    pub mem_total: u64,
    pub swap_used: u64,
    pub swap_total: u64,
    /// The candle device `device = "auto"` picks, and why.
    pub auto_device: String,
    pub auto_reason: String,
    pub backends_built: String,
    pub threads: String,
    pub gpus: GpuView,
}

#[derive(Clone, Debug, Default)]
pub enum GpuView {
    /// NVML has not answered yet.
    #[default]
    Probing,
    /// No NVIDIA GPU can be seen; the reason in plain words.
    Unavailable(String),
    Gpus {
        driver: String,
        gpus: Vec<GpuRow>,
    },
}

#[derive(Clone, Debug, Default)]
pub struct GpuRow {
    pub index: u32,
    pub name: String,
    pub util_percent: Option<u32>,
    pub mem_used: u64,
    pub mem_total: u64,
    pub temperature_c: Option<u32>,
    pub power_w: Option<f64>,
    pub processes: Vec<GpuProcess>,
}

#[derive(Clone, Debug, Default)]
pub struct GpuProcess {
    pub pid: u32,
    pub name: String,
    pub mem_used: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

#[derive(Clone, Debug, Default)]
pub struct LogLine {
    /// Local time, `HH:MM:SS`.
    pub time: String,
    pub level: LogLevel,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HelpRow {
    /// Where the binding applies, e.g. `global`, `lists`.
    pub context: String,
    /// e.g. `1–7` or `Tab, Shift-Tab`.
    pub keys: String,
    pub description: String,
}

/// Byte counts for humans: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_a_human_wrote_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}

/// The Sampler pane: models to sample, the settings of the next job, past jobs and the
/// selected job's results.
#[derive(Clone, Debug, Default)]
pub struct SamplerView {
    pub models: Vec<SamplerModel>,
    /// (name, value) of each setting, in the order J/K move through them.
    pub settings: Vec<(String, String)>,
    pub setting_selected: usize,
    pub jobs: Vec<SampleJobRow>,
    pub job_selected: usize,
    pub job: Option<SampleJobView>,
    pub samples_dir: String,
    pub runs_dir: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SamplerModel {
    pub label: String,
    /// Where it comes from and what it is, e.g. `finished run · mlp 2-D · 2 classes`.
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleJobRow {
    pub id: String,
    /// `running 40%`, `finished`, `failed`.
    pub state: String,
    pub failed: bool,
}

/// One guidance mode of a job, as a table row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleModeRow {
    pub guidance: String,
    pub nfe_total: u64,
    pub nfe_per_sample: f64,
    pub nfe_vs_cfg: Option<f64>,
    pub seconds: f64,
    pub distance_to_cfg: Option<f64>,
    pub judged_accuracy: Option<f64>,
    /// Mean step at which guidance stopped, over the samples where it did (and how many).
    pub stopped: Option<(f64, usize)>,
    pub estimate_error: Option<f64>,
}

/// 2-D samples of one mode, for a scatter plot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointsView {
    pub label: String,
    /// (x, y, class).
    pub points: Vec<(f64, f64, u32)>,
    pub bounds: ((f64, f64), (f64, f64)),
}

#[derive(Clone, Debug, Default)]
pub struct SampleJobView {
    /// The job folder's name, and the key its images are cached under.
    pub id: String,
    pub state: String,
    pub failed: bool,
    /// (key, value) lines: model, sampler, steps, scale, threshold …
    pub facts: Vec<(String, String)>,
    pub message: Option<String>,
    /// Steps done of steps to do, while running.
    pub progress: Option<(usize, usize)>,
    pub modes: Vec<SampleModeRow>,
    /// Each mode's first image samples (the mode is the images' label), laid out by the pane
    /// to fit: one sample per cell at its own resolution stays legible in half-blocks.
    pub images: Vec<Vec<ImageView>>,
    /// Each mode's 2-D samples.
    pub points: Vec<PointsView>,
    /// Per-step cosine of the conditional and unconditional predictions, with the γ̄ line;
    /// the markers are the steps at which AG stopped guiding.
    pub cosine: Option<crate::chart::ChartView>,
}
