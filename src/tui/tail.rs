//! Follows one run's `metrics.jsonl` from the last offset read, and turns it into charts.

use crate::runs::METRICS;
use crate::runs::records::{Metric, read_from};
use descent_panes::chart::{ChartSeries, ChartView, HeatmapView};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Point {
    step: u64,
    time: f64,
    loss: f64,
    grad_l2: f64,
    lr: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct EvalPoint {
    step: u64,
    time: f64,
    loss: f64,
    accuracy: Option<f64>,
}

/// How the charts are drawn; the user toggles these.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChartSettings {
    pub log_y: bool,
    pub smoothing: f64,
    /// x = seconds since the run's first record instead of the step.
    pub wall_time: bool,
}

impl Default for ChartSettings {
    fn default() -> Self {
        ChartSettings {
            log_y: false,
            smoothing: 0.6,
            wall_time: false,
        }
    }
}

pub struct RunTail {
    pub dir: PathBuf,
    offset: u64,
    train: Vec<Point>,
    eval: Vec<EvalPoint>,
    /// Parameter tensor names, in the order of `layer_norms`' columns.
    layers: Vec<String>,
    /// Per step: each tensor's gradient L2 norm.
    layer_norms: Vec<Vec<f64>>,
}

impl RunTail {
    pub fn new(dir: &Path) -> RunTail {
        RunTail {
            dir: dir.to_path_buf(),
            offset: 0,
            train: Vec::new(),
            eval: Vec::new(),
            layers: Vec::new(),
            layer_norms: Vec::new(),
        }
    }

    /// Reads what was appended since the last call; returns whether anything new arrived.
    pub fn poll(&mut self) -> bool {
        let Ok((records, offset, _)) = read_from::<Metric>(&self.dir.join(METRICS), self.offset)
        else {
            return false;
        };
        self.offset = offset;
        let any = !records.is_empty();
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
                    // A resumed run re-logs the steps after its checkpoint: the new ones win.
                    let keep = self.train.iter().take_while(|p| p.step < step).count();
                    self.train.truncate(keep);
                    self.layer_norms.truncate(keep);
                    self.eval.retain(|p| p.step < step);
                    if self.layers.is_empty() {
                        self.layers = params.keys().cloned().collect();
                    }
                    self.layer_norms.push(
                        self.layers
                            .iter()
                            .map(|n| params.get(n).map_or(f64::NAN, |p| p.grad_l2.0))
                            .collect(),
                    );
                    self.train.push(Point {
                        step,
                        time,
                        loss: loss.0,
                        grad_l2: grad_l2.0,
                        lr: lr.0,
                    });
                }
                Metric::Eval {
                    step,
                    time,
                    loss,
                    accuracy,
                } => {
                    self.eval.retain(|p| p.step < step);
                    self.eval.push(EvalPoint {
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

    /// Each parameter tensor's gradient norm over the run.
    pub fn heatmap(&self, s: ChartSettings) -> HeatmapView {
        let t0 = self.train.first().map_or(0.0, |p| p.time);
        let rows = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let pts = self
                    .train
                    .iter()
                    .zip(&self.layer_norms)
                    .map(|(p, norms)| {
                        let x = if s.wall_time {
                            p.time - t0
                        } else {
                            p.step as f64
                        };
                        (x, norms[i])
                    })
                    .collect();
                (name.clone(), pts)
            })
            .collect();
        HeatmapView {
            title: "gradient norm per tensor (log colour scale)".into(),
            rows,
        }
    }

    pub fn charts(&self, s: ChartSettings) -> Vec<ChartView> {
        let t0 = self.train.first().map_or(0.0, |p| p.time);
        let x = |step: u64, time: f64| if s.wall_time { time - t0 } else { step as f64 };
        let series = |name: &str, pts: Vec<(f64, f64)>| ChartSeries {
            name: name.into(),
            points: pts,
        };
        let chart =
            |title: &str, series: Vec<ChartSeries>, log_y: bool, smoothing: f64| ChartView {
                title: title.into(),
                series,
                log_y,
                smoothing,
                x_label: if s.wall_time {
                    "seconds".into()
                } else {
                    "step".into()
                },
            };
        let train = |f: fn(&Point) -> f64| {
            self.train
                .iter()
                .map(|p| (x(p.step, p.time), f(p)))
                .collect()
        };
        let eval_loss = self
            .eval
            .iter()
            .map(|p| (x(p.step, p.time), p.loss))
            .collect();
        let acc: Vec<(f64, f64)> = self
            .eval
            .iter()
            .filter_map(|p| p.accuracy.map(|a| (x(p.step, p.time), a)))
            .collect();
        vec![
            chart(
                "loss",
                vec![
                    series("train", train(|p| p.loss)),
                    series("eval", eval_loss),
                ],
                s.log_y,
                s.smoothing,
            ),
            chart(
                "gradient norm ‖g‖₂",
                vec![series("‖g‖₂", train(|p| p.grad_l2))],
                s.log_y,
                s.smoothing,
            ),
            chart(
                "learning rate",
                vec![series("lr", train(|p| p.lr))],
                false,
                0.0,
            ),
            chart("eval accuracy", vec![series("accuracy", acc)], false, 0.0),
        ]
    }
}
