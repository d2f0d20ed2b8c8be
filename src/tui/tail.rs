//! Follows one run's `metrics.jsonl` from the last offset read, and turns it into charts.

use crate::runs::records::{Event, History, Metric, ParamRecord, Stepped, read_from};
use crate::runs::{EVENTS, METRICS};
use descent_panes::chart::{ChartSeries, ChartView, HeatmapView};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq)]
struct Point {
    step: u64,
    time: f64,
    loss: f64,
    grad_l2: f64,
    lr: f64,
    /// Each parameter tensor's gradient norm, in the order of `RunTail::layers`.
    layer_norms: Vec<f64>,
    /// Each parameter tensor's update/weight ratio ‖Δw‖/‖w‖.
    layer_updates: Vec<f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct EvalPoint {
    step: u64,
    time: f64,
    loss: f64,
    accuracy: Option<f64>,
}

impl Stepped for Point {
    fn step(&self) -> u64 {
        self.step
    }
}

impl Stepped for EvalPoint {
    fn step(&self) -> u64 {
        self.step
    }
}

/// How the charts are drawn; the user toggles these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartSettings {
    pub log_y: bool,
    pub smoothing: f64,
    /// x = seconds since the run's first record instead of the step.
    pub wall_time: bool,
    /// The heatmap shows update/weight ratios instead of gradient norms.
    pub update_ratios: bool,
}

impl Default for ChartSettings {
    fn default() -> Self {
        ChartSettings {
            log_y: false,
            smoothing: 0.6,
            wall_time: false,
            update_ratios: false,
        }
    }
}

pub struct RunTail {
    pub dir: PathBuf,
    /// `experiment·HHMMSS`, the run's name in overlay legends.
    pub label: String,
    offset: u64,
    events_offset: u64,
    /// (step, time) of learning-rate changes and live config edits.
    changes: Vec<(u64, f64)>,
    history: History<Point, EvalPoint>,
    /// Parameter tensor names, the columns of each point's per-layer values.
    layers: Vec<String>,
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
            events_offset: 0,
            changes: Vec::new(),
            history: History::default(),
            layers: Vec::new(),
        }
    }

    /// Reads what was appended since the last call; returns whether anything new arrived.
    pub fn poll(&mut self) -> bool {
        let Ok((records, offset, _)) = read_from::<Metric>(&self.dir.join(METRICS), self.offset)
        else {
            return false;
        };
        self.offset = offset;
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
        for r in records {
            match r {
                Metric::Train {
                    step,
                    time,
                    loss,
                    grad_l2,
                    lr,
                    params,
                    ..
                } => {
                    if self.layers.is_empty() {
                        self.layers = params.keys().cloned().collect();
                    }
                    let per_layer = |f: fn(&ParamRecord) -> f64| {
                        self.layers
                            .iter()
                            .map(|n| params.get(n).map_or(f64::NAN, f))
                            .collect()
                    };
                    let point = Point {
                        step,
                        time,
                        loss: loss.0,
                        grad_l2: grad_l2.0,
                        lr: lr.0,
                        layer_norms: per_layer(|p| p.grad_l2.0),
                        layer_updates: per_layer(|p| p.update_ratio.0),
                    };
                    self.history.push_train(point);
                }
                Metric::Eval {
                    step,
                    time,
                    loss,
                    accuracy,
                } => {
                    self.history.push_eval(EvalPoint {
                        step,
                        time,
                        loss: loss.0,
                        accuracy: accuracy.map(|a| a.0),
                    });
                }
            }
        }
        any
    }

    /// Each parameter tensor's gradient norm (or update/weight ratio) over the run.
    pub fn heatmap(&self, s: ChartSettings) -> HeatmapView {
        let (values, title): (fn(&Point) -> &[f64], _) = if s.update_ratios {
            (
                |p| &p.layer_updates,
                "update/weight ratio per tensor (log colour scale; u: gradient norms)",
            )
        } else {
            (
                |p| &p.layer_norms,
                "gradient norm per tensor (log colour scale; u: update ratios)",
            )
        };
        let rows = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let pts = self
                    .history
                    .train
                    .iter()
                    .map(|p| (self.x(s, p.step, p.time), values(p)[i]))
                    .collect();
                (name.clone(), pts)
            })
            .collect();
        HeatmapView {
            title: title.into(),
            rows,
        }
    }

    fn x(&self, s: ChartSettings, step: u64, time: f64) -> f64 {
        let t0 = self.history.train.first().map_or(0.0, |p| p.time);
        if s.wall_time { time - t0 } else { step as f64 }
    }

    fn train_series(&self, s: ChartSettings, name: &str, f: fn(&Point) -> f64) -> ChartSeries {
        let points = self
            .history
            .train
            .iter()
            .map(|p| (self.x(s, p.step, p.time), f(p)))
            .collect();
        ChartSeries {
            name: name.into(),
            points,
        }
    }

    fn eval_series(&self, s: ChartSettings, name: &str, loss: bool) -> ChartSeries {
        let points = self
            .history
            .eval
            .iter()
            .filter_map(|p| {
                let v = if loss { Some(p.loss) } else { p.accuracy }?;
                Some((self.x(s, p.step, p.time), v))
            })
            .collect();
        ChartSeries {
            name: name.into(),
            points,
        }
    }

    /// Where the learning rate or the config changed while the run was going.
    fn markers(&self, s: ChartSettings) -> Vec<f64> {
        self.changes
            .iter()
            .map(|&(step, time)| self.x(s, step, time))
            .collect()
    }
}

/// The four charts for `tails[0]` (the selected run) alone, or, with more tails (runs marked
/// for comparison), each chart overlaying every run's curve under its name.
pub fn charts(tails: &[&RunTail], s: ChartSettings) -> Vec<ChartView> {
    let Some(first) = tails.first() else {
        return Vec::new();
    };
    let chart = |title: &str, series: Vec<ChartSeries>, log_y: bool, smoothing: f64| ChartView {
        title: title.into(),
        series,
        log_y,
        smoothing,
        x_label: if s.wall_time {
            "seconds".into()
        } else {
            "step".into()
        },
        markers: first.markers(s),
    };
    if tails.len() == 1 {
        return vec![
            chart(
                "loss",
                vec![
                    first.train_series(s, "train", |p| p.loss),
                    first.eval_series(s, "eval", true),
                ],
                s.log_y,
                s.smoothing,
            ),
            chart(
                "gradient norm ‖g‖₂",
                vec![first.train_series(s, "‖g‖₂", |p| p.grad_l2)],
                s.log_y,
                s.smoothing,
            ),
            chart(
                "learning rate",
                vec![first.train_series(s, "lr", |p| p.lr)],
                false,
                0.0,
            ),
            chart(
                "eval accuracy",
                vec![first.eval_series(s, "accuracy", false)],
                false,
                0.0,
            ),
        ];
    }
    let each = |f: &dyn Fn(&RunTail) -> ChartSeries| tails.iter().map(|t| f(t)).collect::<Vec<_>>();
    vec![
        chart(
            "train loss",
            each(&|t| t.train_series(s, &t.label, |p| p.loss)),
            s.log_y,
            s.smoothing,
        ),
        chart(
            "gradient norm ‖g‖₂",
            each(&|t| t.train_series(s, &t.label, |p| p.grad_l2)),
            s.log_y,
            s.smoothing,
        ),
        chart(
            "learning rate",
            each(&|t| t.train_series(s, &t.label, |p| p.lr)),
            false,
            0.0,
        ),
        chart(
            "eval accuracy",
            each(&|t| t.eval_series(s, &t.label, false)),
            false,
            0.0,
        ),
    ]
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
            params: Default::default(),
        }
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
        assert_eq!(c[0].series[0].points, [(1.0, 3.0), (2.0, 5.0)]);
        assert!(!t.poll(), "nothing new");
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
