//! Follows one run's `metrics.jsonl` (and the events marked on its charts) from the last
//! offset read. Each series is kept as it arrives in a chart store with its summaries
//! (`descent_panes::series`), so drawing a long run costs what the screen's width costs, and
//! a view of the charts shares the store rather than copying it.
//!
//! Memory per training record: 16 bytes for its step and time, 22 for each smoothed series
//! (loss, gradient norm), 11 for each other one (learning rate, and two per parameter tensor):
//! 71 + 22·tensors bytes, e.g. 203 for the demo's 6-tensor MLP.

use crate::runs::records::{
    Event, Metric, StepLog, before_eval, before_train, read_chunk, read_from,
};
use crate::runs::{EVENTS, METRICS};
use descent_panes::chart::{ChartSeries, ChartView, HeatmapView};
use descent_panes::series::Values;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Records of one kind as columns: their steps and times, and one series per value.
#[derive(Clone, Debug, Default)]
struct Track {
    steps: Arc<Vec<f64>>,
    times: Arc<Vec<f64>>,
    values: Vec<Arc<Values>>,
    /// Which series the charts draw smoothed (they keep a smoothed column).
    smoothed: Vec<bool>,
}

impl Track {
    /// A track of one series per entry of `smoothed`.
    fn new(smoothed: &[bool]) -> Track {
        Track {
            values: vec![Arc::default(); smoothed.len()],
            smoothed: smoothed.to_vec(),
            ..Track::default()
        }
    }

    /// Keeps the smoothed series' averages for the charts' smoothing and scale.
    fn smooth(&mut self, s: ChartSettings) {
        let want = (s.smoothing > 0.0).then_some((s.smoothing, s.log_y));
        for (series, _) in self.values.iter_mut().zip(&self.smoothed).filter(|p| *p.1) {
            if series.smoothing() != want {
                Arc::make_mut(series).set_smoothing(s.smoothing, s.log_y);
            }
        }
    }

    fn push(&mut self, step: u64, time: f64, values: &[f64]) {
        // Time only moves forward here: the charts search x in order, and a clock stepped
        // back would scramble them.
        let time = self.times.last().map_or(time, |&t| t.max(time));
        // The views sharing these were dropped before polling, so nothing is copied.
        Arc::make_mut(&mut self.steps).push(step as f64);
        Arc::make_mut(&mut self.times).push(time);
        for (series, &v) in self.values.iter_mut().zip(values) {
            Arc::make_mut(series).push(v);
        }
    }

    /// Series `column` over steps, or over seconds since `t0`.
    fn series(&self, name: &str, column: usize, s: ChartSettings, t0: f64) -> ChartSeries {
        let (x, x_origin) = if s.wall_time {
            (self.times.clone(), t0)
        } else {
            (self.steps.clone(), 0.0)
        };
        ChartSeries {
            name: name.into(),
            x,
            x_origin,
            y: self.values.get(column).cloned().unwrap_or_default(),
        }
    }
}

impl StepLog for Track {
    fn truncate_from(&mut self, step: u64) {
        let n = self.steps.partition_point(|&s| s < step as f64);
        if n == self.steps.len() {
            return;
        }
        Arc::make_mut(&mut self.steps).truncate(n);
        Arc::make_mut(&mut self.times).truncate(n);
        for series in &mut self.values {
            Arc::make_mut(series).truncate(n);
        }
    }
}

/// At most this much of `metrics.jsonl` is read per poll (about 50,000 records, a fraction of
/// a second), so opening a long run neither stalls the UI nor holds the whole file at once: the
/// app polls again at once while a tail is behind, drawing between pieces.
const POLL_BYTES: u64 = 32 << 20;

/// The training track's columns: loss, ‖g‖₂, learning rate, then each parameter tensor's
/// gradient norm, then each one's update/weight ratio.
const LOSS: usize = 0;
const GRAD: usize = 1;
const LR: usize = 2;
const LAYERS: usize = 3;

/// The smoothing weights `e` cycles through (then off).
pub const SMOOTHINGS: [f64; 3] = [0.6, 0.9, 0.99];

/// How the charts are drawn; the user toggles these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartSettings {
    pub log_y: bool,
    pub smoothing: f64,
    /// x = seconds since the run's first record instead of the step.
    pub wall_time: bool,
    /// The heatmap shows update/weight ratios instead of gradient norms.
    pub update_ratios: bool,
    /// What the fourth chart shows: 0 eval accuracy, then the run's further scalars (its
    /// kind's and its probes') in name order, cycling (`M`).
    pub metric: usize,
}

impl Default for ChartSettings {
    fn default() -> Self {
        ChartSettings {
            log_y: false,
            smoothing: SMOOTHINGS[0],
            wall_time: false,
            update_ratios: false,
            metric: 0,
        }
    }
}

pub struct RunTail {
    pub dir: PathBuf,
    /// `experiment·HHMMSS`, the run's name in overlay legends.
    pub label: String,
    offset: u64,
    /// Whether `metrics.jsonl` has more than the last poll read.
    behind: bool,
    /// Bytes read per poll ([`POLL_BYTES`]; smaller in tests).
    chunk: u64,
    events_offset: u64,
    /// (step, time) of learning-rate changes and live config edits.
    changes: Vec<(u64, f64)>,
    train: Track,
    eval_loss: Track,
    eval_accuracy: Track,
    /// Parameter tensor names, in the order of the training track's per-tensor columns.
    layers: Vec<String>,
    /// The kind's further scalars (GRPO's reward, KL, probes …), one track per name: each
    /// holds only the steps that recorded it (probes run on a cadence).
    extras: BTreeMap<String, Track>,
    /// The smoothing the charts last asked for (a track that appears later keeps it too).
    settings: ChartSettings,
}

impl RunTail {
    pub fn new(dir: &Path) -> RunTail {
        let name = |p: Option<&Path>| {
            p.and_then(|p| p.file_name())
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        };
        RunTail {
            dir: dir.to_path_buf(),
            // Short enough for a legend: the experiment and the run id's time of day.
            label: {
                let id = name(Some(dir));
                let tail: String = id.chars().skip(id.len().saturating_sub(6)).collect();
                format!("{}·{tail}", name(dir.parent()))
            },
            offset: 0,
            behind: false,
            chunk: POLL_BYTES,
            events_offset: 0,
            changes: Vec::new(),
            train: Track::default(),
            eval_loss: Track::new(&[true]),
            eval_accuracy: Track::new(&[false]),
            layers: Vec::new(),
            extras: BTreeMap::new(),
            settings: ChartSettings::default(),
        }
    }

    /// Whether the last poll left records unread (a long run being opened).
    pub fn behind(&self) -> bool {
        self.behind
    }

    /// Keeps the averages the charts will draw (computed when the smoothing or scale
    /// changes; new records extend them).
    pub fn smooth(&mut self, s: ChartSettings) {
        self.settings = s;
        self.train.smooth(s);
        self.eval_loss.smooth(s);
        for t in self.extras.values_mut() {
            t.smooth(s);
        }
    }

    /// Reads what was appended since the last call, up to [`POLL_BYTES`]; returns whether
    /// anything new arrived. Views made from this tail must be dropped first (they share its
    /// series).
    pub fn poll(&mut self) -> bool {
        let Ok((records, offset, _, more)) =
            read_chunk::<Metric>(&self.dir.join(METRICS), self.offset, self.chunk)
        else {
            return false;
        };
        self.offset = offset;
        self.behind = more;
        let mut any = !records.is_empty();
        if let Ok((events, off, _)) = read_from::<Event>(&self.dir.join(EVENTS), self.events_offset)
        {
            self.events_offset = off;
            for e in events {
                if e.event == "lr" || (e.event == "config" && !e.message.starts_with("restart")) {
                    self.changes.push((e.step, e.time));
                    any = true;
                }
            }
        }
        let mut row = Vec::new();
        for r in records {
            match r {
                Metric::Train {
                    step,
                    time,
                    loss,
                    grad_l2,
                    lr,
                    params,
                    extra,
                    ..
                } => {
                    for track in self.extras.values_mut() {
                        before_train(track, &mut [], step);
                    }
                    let settings = self.settings;
                    for (name, v) in extra {
                        let track = self.extras.entry(name).or_insert_with_key(|n| {
                            // Rewards, KL, entropy, lengths and coherence are noisy: drawn
                            // smoothed; D³S's fractions are not.
                            let mut t = Track::new(&[!n.starts_with("d3s/")]);
                            t.smooth(settings);
                            t
                        });
                        track.push(step, time, &[v.0]);
                    }
                    if self.layers.is_empty() && self.train.values.is_empty() {
                        self.layers = params.keys().cloned().collect();
                        let mut smoothed = vec![true, true, false];
                        smoothed.resize(LAYERS + 2 * self.layers.len(), false);
                        self.train = Track::new(&smoothed);
                    }
                    before_train(
                        &mut self.train,
                        &mut [&mut self.eval_loss, &mut self.eval_accuracy],
                        step,
                    );
                    row.clear();
                    row.extend([loss.0, grad_l2.0, lr.0]);
                    let per_tensor = |n: &String, ratio: bool| {
                        params.get(n).map_or(f64::NAN, |p| {
                            if ratio { p.update_ratio.0 } else { p.grad_l2.0 }
                        })
                    };
                    row.extend(self.layers.iter().map(|n| per_tensor(n, false)));
                    row.extend(self.layers.iter().map(|n| per_tensor(n, true)));
                    self.train.push(step, time, &row);
                }
                Metric::Eval {
                    step,
                    time,
                    loss,
                    accuracy,
                } => {
                    before_eval(&mut [&mut self.eval_loss, &mut self.eval_accuracy], step);
                    if let Some(l) = loss {
                        self.eval_loss.push(step, time, &[l.0]);
                    }
                    if let Some(a) = accuracy {
                        self.eval_accuracy.push(step, time, &[a.0]);
                    }
                }
            }
        }
        any
    }

    /// Each parameter tensor's gradient norm (or update/weight ratio) over the run.
    pub fn heatmap(&self, s: ChartSettings) -> HeatmapView {
        let (first, title) = if s.update_ratios {
            (
                LAYERS + self.layers.len(),
                "update/weight ratio per tensor (log colour scale; u: gradient norms)",
            )
        } else {
            (
                LAYERS,
                "gradient norm per tensor (log colour scale; u: update ratios)",
            )
        };
        let rows = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, name)| self.train.series(name, first + i, s, self.t0()))
            .collect();
        HeatmapView {
            title: title.into(),
            rows,
        }
    }

    /// When the run's first training record was written: wall-clock x counts from here.
    fn t0(&self) -> f64 {
        self.train.times.first().copied().unwrap_or(0.0)
    }

    fn train_series(&self, s: ChartSettings, name: &str, column: usize) -> ChartSeries {
        self.train.series(name, column, s, self.t0())
    }

    fn eval_series(&self, s: ChartSettings, name: &str, loss: bool) -> ChartSeries {
        let track = if loss {
            &self.eval_loss
        } else {
            &self.eval_accuracy
        };
        track.series(name, 0, s, self.t0())
    }

    /// The kind's scalar `key` (e.g. GRPO's `reward`) as a series named `name`; empty when
    /// the run records no such scalar.
    fn extra_series(&self, s: ChartSettings, name: &str, key: &str) -> ChartSeries {
        match self.extras.get(key) {
            Some(t) => t.series(name, 0, s, self.t0()),
            None => ChartSeries {
                name: name.into(),
                x: Arc::default(),
                x_origin: 0.0,
                y: Arc::default(),
            },
        }
    }

    /// Where the learning rate or the config changed while the run was going.
    fn markers(&self, s: ChartSettings) -> Vec<f64> {
        self.changes
            .iter()
            .map(|&(step, time)| {
                if s.wall_time {
                    time - self.t0()
                } else {
                    step as f64
                }
            })
            .collect()
    }
}

/// A chart of `series` with the x axis and the change markers of `first`, the selected run.
fn chart_view(
    first: &RunTail,
    s: ChartSettings,
    title: &str,
    series: Vec<ChartSeries>,
    log_y: bool,
    smoothing: f64,
) -> ChartView {
    ChartView {
        title: title.into(),
        series,
        log_y,
        smoothing,
        x_label: if s.wall_time { "seconds" } else { "step" }.into(),
        markers: first.markers(s),
    }
}

/// The four charts for `tails[0]` (the selected run) alone, or, with more tails (runs marked
/// for comparison), each chart overlaying every run's curve under its name.
pub fn charts(tails: &[&RunTail], s: ChartSettings) -> Vec<ChartView> {
    let Some(first) = tails.first() else {
        return Vec::new();
    };
    let chart = |title: &str, series: Vec<ChartSeries>, log_y: bool, smoothing: f64| {
        chart_view(first, s, title, series, log_y, smoothing)
    };
    if tails.len() == 1 {
        return vec![
            chart(
                "loss",
                vec![
                    first.train_series(s, "train", LOSS),
                    first.eval_series(s, "eval", true),
                ],
                s.log_y,
                s.smoothing,
            ),
            chart(
                "gradient norm ‖g‖₂",
                vec![first.train_series(s, "‖g‖₂", GRAD)],
                s.log_y,
                s.smoothing,
            ),
            chart(
                "learning rate",
                vec![first.train_series(s, "lr", LR)],
                false,
                0.0,
            ),
            fourth_chart(tails, s),
        ];
    }
    let each = |f: &dyn Fn(&RunTail) -> ChartSeries| tails.iter().map(|t| f(t)).collect::<Vec<_>>();
    vec![
        chart(
            "train loss",
            each(&|t| t.train_series(s, &t.label, LOSS)),
            s.log_y,
            s.smoothing,
        ),
        chart(
            "gradient norm ‖g‖₂",
            each(&|t| t.train_series(s, &t.label, GRAD)),
            s.log_y,
            s.smoothing,
        ),
        chart(
            "learning rate",
            each(&|t| t.train_series(s, &t.label, LR)),
            false,
            0.0,
        ),
        fourth_chart(tails, s),
    ]
}

/// The fourth chart: eval accuracy, or the further scalar [`ChartSettings::metric`] picks
/// among the selected run's, overlaid for every shown run; the title says how to go on.
fn fourth_chart(tails: &[&RunTail], s: ChartSettings) -> ChartView {
    let first = tails[0];
    let keys: Vec<&String> = first.extras.keys().collect();
    let pick = s.metric % (keys.len() + 1);
    // Which of how many, when `M` has somewhere to go.
    let more = match keys.len() {
        0 => String::new(),
        n => format!(" · M {}/{}", pick + 1, n + 1),
    };
    let one = tails.len() == 1;
    if pick == 0 {
        let name = |t: &RunTail| {
            if one {
                "accuracy".into()
            } else {
                t.label.clone()
            }
        };
        let series = tails
            .iter()
            .map(|t| t.eval_series(s, &name(t), false))
            .collect();
        return chart_view(
            first,
            s,
            &format!("eval accuracy{more}"),
            series,
            false,
            0.0,
        );
    }
    let key = keys[pick - 1];
    let name = |t: &RunTail| if one { key.clone() } else { t.label.clone() };
    let series = tails
        .iter()
        .map(|t| t.extra_series(s, &name(t), key))
        .collect();
    // Drawn as the RL pane draws it: smoothed unless D³S's fractions.
    let smoothing = if key.starts_with("d3s/") {
        0.0
    } else {
        s.smoothing
    };
    chart_view(
        first,
        s,
        &format!("{key}{more}"),
        series,
        s.log_y,
        smoothing,
    )
}

/// The RL pane's charts: reward, held-out accuracy, KL, entropy, completion length, D³S's
/// kept fractions, Var(A) before and after selection, and the gradient norm — for the
/// selected run, or overlaying every shown run's curve under its name.
pub fn rl_charts(tails: &[&RunTail], s: ChartSettings) -> Vec<ChartView> {
    let Some(first) = tails.first() else {
        return Vec::new();
    };
    let chart = |title: &str, series: Vec<ChartSeries>, smoothing: f64| {
        chart_view(first, s, title, series, false, smoothing)
    };
    let one = tails.len() == 1;
    // One series per run, or (alone) one per named key.
    let per_run = |keys: &[(&str, &str)]| -> Vec<ChartSeries> {
        if one {
            keys.iter()
                .map(|(label, key)| first.extra_series(s, label, key))
                .collect()
        } else {
            tails
                .iter()
                .map(|t| t.extra_series(s, &t.label, keys[0].1))
                .collect()
        }
    };
    // One series named `alone`, or one per run under its label.
    let overlay = |alone: &str, f: &dyn Fn(&RunTail, &str) -> ChartSeries| -> Vec<ChartSeries> {
        if one {
            vec![f(first, alone)]
        } else {
            tails.iter().map(|t| f(t, &t.label)).collect()
        }
    };
    let accuracy = overlay("held out", &|t, n| t.eval_series(s, n, false));
    let grad = overlay("‖g‖₂", &|t, n| t.train_series(s, n, GRAD));
    vec![
        chart("reward", per_run(&[("reward", "reward")]), s.smoothing),
        chart("held-out accuracy", accuracy, 0.0),
        chart("KL to the reference", per_run(&[("kl", "kl")]), s.smoothing),
        chart("entropy", per_run(&[("entropy", "entropy")]), s.smoothing),
        chart(
            "completion length",
            per_run(&[("mean", "completions/mean_length")]),
            s.smoothing,
        ),
        chart(
            "D³S kept fraction",
            per_run(&[
                ("rollouts", "d3s/sample_kept_frac"),
                ("tokens", "d3s/token_kept_frac"),
            ]),
            0.0,
        ),
        chart(
            "Var(A)",
            per_run(&[
                ("after", "d3s/var_adv_after"),
                ("before", "d3s/var_adv_before"),
            ]),
            0.0,
        ),
        chart("gradient norm ‖g‖₂", grad, s.smoothing),
    ]
}

/// The gradient probes' charts (the Runs pane's probe view): m-coherence, the noise scale,
/// sharpness against the edge of stability, and the opposing-signal group losses with the
/// probe set's loss spikes marked — for the selected run, or overlaying every shown run.
pub fn probe_charts(tails: &[&RunTail], s: ChartSettings) -> Vec<ChartView> {
    let Some(first) = tails.first() else {
        return Vec::new();
    };
    let one = tails.len() == 1;
    let per_run = |keys: &[(&str, &str)]| -> Vec<ChartSeries> {
        if one {
            keys.iter()
                .map(|(label, key)| first.extra_series(s, label, key))
                .filter(|c| !c.y.is_empty())
                .collect()
        } else {
            tails
                .iter()
                .map(|t| t.extra_series(s, &t.label, keys[0].1))
                .collect()
        }
    };
    let chart = |title: &str, series: Vec<ChartSeries>, log_y: bool| {
        chart_view(first, s, title, series, log_y, 0.0)
    };
    // Adam is judged on the preconditioned sharpness; SGD on λ_max itself.
    let adam = first.extras.contains_key("sharpness/preconditioned");
    let sharp: &[(&str, &str)] = if adam {
        &[
            ("P⁻¹H λmax", "sharpness/preconditioned"),
            ("38/η", "sharpness/edge"),
            ("λmax", "sharpness/lambda_max"),
        ]
    } else {
        &[("λmax", "sharpness/lambda_max"), ("2/η", "sharpness/edge")]
    };
    let mut opposing = chart(
        "opposing signals: group losses (▾ spike)",
        per_run(&[
            ("all", "opposing/loss"),
            ("rose most", "opposing/rise"),
            ("fell most", "opposing/fall"),
            ("rest", "opposing/rest"),
        ]),
        s.log_y,
    );
    opposing.markers = first
        .extras
        .get("opposing/spike")
        .map(|t| {
            let (x, origin) = if s.wall_time {
                (&t.times, first.t0())
            } else {
                (&t.steps, 0.0)
            };
            x.iter().map(|x| x - origin).collect()
        })
        .unwrap_or_default();
    vec![
        chart(
            "m-coherence (m = batch)",
            per_run(&[("m-coherence", "coherence/m")]),
            true,
        ),
        chart(
            "noise scale B_noise = trΣ/‖G‖²",
            per_run(&[("B_noise", "coherence/b_noise")]),
            true,
        ),
        chart(
            if adam {
                "sharpness · edge 38/η (Adam)"
            } else {
                "sharpness · edge 2/η (SGD)"
            },
            per_run(sharp),
            // The edge (∝ 1/η) runs off to infinity as a schedule decays: log scale always.
            true,
        ),
        opposing,
    ]
}

/// Which probes a run has recorded so far (for the probe view's note).
pub fn recorded_probes(t: &RunTail) -> Vec<&'static str> {
    [
        ("coherence/m", "coherence"),
        ("sharpness/lambda_max", "sharpness"),
        ("el2n/batch_mean", "EL2N"),
        ("opposing/loss", "opposing signals"),
    ]
    .into_iter()
    .filter(|(k, _)| t.extras.contains_key(*k))
    .map(|(_, n)| n)
    .collect()
}

/// The latest value of the scalar `key`, if recorded.
pub fn last_extra(t: &RunTail, key: &str) -> Option<f64> {
    t.extras
        .get(key)?
        .values
        .first()?
        .raw()
        .values()
        .last()
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::records::{Num, append};

    fn train(step: u64, loss: f64) -> Metric {
        Metric::Train {
            step,
            time: step as f64,
            loss: Num(loss),
            grad_l2: Num(1.0),
            grad_l1: Num(2.0),
            lr: Num(0.1),
            clip_scale: Num(1.0),
            examples_per_s: Num(100.0),
            tokens_per_s: None,
            params: Default::default(),
            extra: Default::default(),
        }
    }

    /// A run's tail over three steps that logged `reward` = step / 4 and `other` = 0.5.
    fn rewarded(dir: &Path, other: &str) -> RunTail {
        let path = dir.join(METRICS);
        for step in 1..=3 {
            let mut m = train(step, 0.1);
            if let Metric::Train { extra, .. } = &mut m {
                extra.insert("reward".into(), Num(step as f64 / 4.0));
                extra.insert(other.into(), Num(0.5));
            }
            append(&path, &m).unwrap();
        }
        let mut t = RunTail::new(dir);
        assert!(t.poll());
        t
    }

    #[test]
    fn the_rl_charts_draw_the_extra_scalars_and_leave_missing_ones_empty() {
        let dir = tempfile::tempdir().unwrap();
        let t = rewarded(dir.path(), "d3s/sample_kept_frac");
        let s = ChartSettings {
            smoothing: 0.0,
            ..ChartSettings::default()
        };
        let charts = rl_charts(&[&t], s);
        let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles[0], "reward");
        assert_eq!(
            charts[0].series[0].points(),
            vec![(1.0, 0.25), (2.0, 0.5), (3.0, 0.75)]
        );
        let kl = charts.iter().find(|c| c.title.starts_with("KL")).unwrap();
        assert!(kl.series[0].is_empty(), "no kl recorded (β = 0)");
        let kept = charts.iter().find(|c| c.title.contains("kept")).unwrap();
        assert_eq!(kept.series[0].points().len(), 3);
    }

    #[test]
    fn the_fourth_chart_cycles_from_accuracy_through_the_runs_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let t = rewarded(dir.path(), "el2n/batch_mean");
        let fourth = |metric: usize| {
            let s = ChartSettings {
                smoothing: 0.0,
                metric,
                ..ChartSettings::default()
            };
            charts(&[&t], s).remove(3)
        };
        assert_eq!(fourth(0).title, "eval accuracy · M 1/3");
        assert_eq!(fourth(1).title, "el2n/batch_mean · M 2/3");
        let reward = fourth(2);
        assert_eq!(reward.title, "reward · M 3/3");
        assert_eq!(
            reward.series[0].points(),
            vec![(1.0, 0.25), (2.0, 0.5), (3.0, 0.75)]
        );
        assert_eq!(fourth(3).title, fourth(0).title, "round again");
    }

    #[test]
    fn probe_charts_draw_each_probe_at_the_steps_that_recorded_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS);
        for step in 1..=20 {
            let mut m = train(step, 0.1);
            if let Metric::Train { extra, .. } = &mut m {
                if step % 5 == 0 {
                    extra.insert("coherence/m".into(), Num(step as f64));
                }
                if step % 10 == 0 {
                    extra.insert("sharpness/lambda_max".into(), Num(2.0));
                    extra.insert("sharpness/edge".into(), Num(20.0));
                    extra.insert("opposing/loss".into(), Num(1.0));
                }
                if step == 20 {
                    extra.insert("opposing/spike".into(), Num(1.5));
                }
            }
            append(&path, &m).unwrap();
        }
        let mut t = RunTail::new(dir.path());
        assert!(t.poll());
        let s = ChartSettings {
            smoothing: 0.0,
            ..ChartSettings::default()
        };
        let charts = probe_charts(&[&t], s);
        assert_eq!(
            charts[0].series[0].points(),
            vec![(5.0, 5.0), (10.0, 10.0), (15.0, 15.0), (20.0, 20.0)]
        );
        assert!(charts[1].series.is_empty(), "no noise scale recorded");
        assert!(charts[2].title.contains("(SGD)"));
        let names: Vec<&str> = charts[2].series.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["λmax", "2/η"]);
        assert_eq!(
            charts[2].series[1].points(),
            vec![(10.0, 20.0), (20.0, 20.0)]
        );
        assert_eq!(charts[3].markers, vec![20.0], "the spike is marked");
        assert_eq!(
            recorded_probes(&t),
            ["coherence", "sharpness", "opposing signals"]
        );
        assert_eq!(last_extra(&t, "coherence/m"), Some(20.0));
    }

    fn run(root: &Path, id: &str, losses: &[f64]) -> PathBuf {
        let dir = root.join("exp").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, &l) in losses.iter().enumerate() {
            append(&dir.join(METRICS), &train(i as u64 + 1, l)).unwrap();
        }
        dir
    }

    #[test]
    fn a_resumed_run_replaces_the_steps_it_logs_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = run(root.path(), "20261128-101010", &[3.0, 2.0, 1.0]);
        // Resumed from step 1: steps 2 and 3 come again with new values.
        append(&dir.join(METRICS), &train(2, 5.0)).unwrap();
        let mut t = RunTail::new(&dir);
        assert!(t.poll());
        let c = charts(&[&t], ChartSettings::default());
        assert_eq!(c[0].series[0].points(), [(1.0, 3.0), (2.0, 5.0)]);
        assert!(!t.poll(), "nothing new");
    }

    #[test]
    fn the_average_on_screen_is_kept_and_extended_as_records_arrive() {
        let root = tempfile::tempdir().unwrap();
        let losses: Vec<f64> = (0..40).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let dir = run(root.path(), "20261128-101010", &losses[..25]);
        let mut t = RunTail::new(&dir);
        t.poll();
        let s = ChartSettings {
            log_y: true,
            ..ChartSettings::default()
        };
        t.smooth(s);
        for (i, &l) in losses.iter().enumerate().skip(25) {
            append(&dir.join(METRICS), &train(i as u64 + 1, l)).unwrap();
        }
        assert!(t.poll());
        let c = charts(&[&t], s);
        let want = descent_panes::series::Ema::over(0.6, true, &losses).1;
        assert_eq!(c[0].series[0].y.smoothed(0.6, true), Some(&want));
        assert_eq!(
            c[2].series[0].y.smoothing(),
            None,
            "the lr chart is never smoothed"
        );
        assert_eq!(c[0].series[0].len(), 40);
        // The wall-clock x counts seconds from the first record (the test writes time = step).
        let wall = ChartSettings {
            wall_time: true,
            ..s
        };
        assert_eq!(charts(&[&t], wall)[0].series[0].points()[3].0, 3.0);
    }

    #[test]
    fn a_long_file_is_read_in_pieces_to_the_same_charts() {
        let root = tempfile::tempdir().unwrap();
        let losses: Vec<f64> = (0..300).map(|i| (i % 17) as f64).collect();
        let dir = run(root.path(), "20261128-101010", &losses);
        let mut whole = RunTail::new(&dir);
        assert!(whole.poll());
        assert!(!whole.behind());
        let mut pieces = RunTail::new(&dir);
        pieces.chunk = 2000;
        let mut polls = 0;
        while pieces.poll() {
            polls += 1;
        }
        assert!(polls > 5, "{polls} polls");
        assert!(!pieces.behind());
        let s = ChartSettings::default();
        assert_eq!(charts(&[&pieces], s), charts(&[&whole], s));
    }

    #[test]
    fn marked_runs_overlay_under_their_names_with_change_markers() {
        let root = tempfile::tempdir().unwrap();
        let a = run(root.path(), "20261128-101010", &[3.0, 2.0]);
        let b = run(root.path(), "20261128-111111", &[4.0]);
        let e = Event {
            time: 2.0,
            step: 2,
            event: "lr".into(),
            message: "peak learning rate set to 0.01".into(),
        };
        append(&a.join(EVENTS), &e).unwrap();
        let (mut ta, mut tb) = (RunTail::new(&a), RunTail::new(&b));
        ta.poll();
        tb.poll();
        let c = charts(&[&ta, &tb], ChartSettings::default());
        assert_eq!(c.len(), 4);
        let names: Vec<&str> = c[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["exp·101010", "exp·111111"]);
        assert_eq!(
            c[0].markers,
            [2.0],
            "the selected run's lr change is marked"
        );
    }
}
