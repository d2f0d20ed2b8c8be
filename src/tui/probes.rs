//! The Runs pane's probe view (`v`): which run it shows, the files it read for that run
//! (EL2N scores from the newest checkpoint, `opposing.jsonl`, `hessian/step-N.json`) — each
//! re-read only when it changed — the run's dataset for labels and images (loaded off the UI
//! thread), and the `descent probe hessian` child that `d` starts.

use crate::config::{DataSource, Experiment};
use crate::runs::probes::{HESSIAN_DIR, el2n_of_run, read_opposing, spectra_of_run};
use crate::runs::{CONFIG, checkpoint};
use descent_models::data::{Dataset, Targets};
use descent_models::probes::hessian::{density, node_range};
use descent_models::probes::opposing::Probe;
use descent_panes::chart::{ChartSeries, ChartView};
use descent_panes::series::Values;
use descent_panes::view::{El2nView, ExampleView, ImageView, OpposingView, SpectrumView};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

/// Examples shown in each strip.
const SHOWN: usize = 12;
const BINS: usize = 28;
/// The log of a `descent probe hessian` started from the TUI.
pub const PROBE_LOG: &str = "probe.log";

/// What the probe view shows from the run's probe files.
pub struct Shown {
    pub el2n: Option<El2nView>,
    pub opposing: Option<OpposingView>,
    /// The latest probe's rise and fall groups: their mean loss at every probe of the run.
    pub groups: Option<ChartView>,
    pub spectrum: Option<SpectrumView>,
    pub spectrum_note: String,
}

#[derive(Default)]
pub struct ProbeViewer {
    /// Whether the Runs pane shows the probes instead of the training charts.
    pub on: bool,
    run: Option<PathBuf>,
    /// Newest checkpoint step and the view of its scores.
    el2n: Option<(u64, Option<El2nView>)>,
    /// The probes read from `opposing.jsonl`, and how far it was read.
    opposing_log: (u64, Vec<Probe>),
    /// The latest probe's groups, and their losses over every probe (`None`: to be built).
    opposing: Option<(Option<OpposingView>, Option<ChartView>)>,
    spectrum: Option<(Vec<PathBuf>, Option<SpectrumView>, String)>,
    data: Option<Arc<Dataset>>,
    loading: Option<Receiver<Option<Dataset>>>,
    /// The pid of a spectrum computation started from here, and its run.
    computing: Option<(u32, PathBuf)>,
    /// Whether anything shown changed since the last [`ProbeViewer::take_dirty`].
    dirty: bool,
}

impl ProbeViewer {
    /// Forgets what was read when another run is selected.
    fn select(&mut self, run: &Path, data_dir: &Path) {
        if self.run.as_deref() == Some(run) {
            return;
        }
        *self = ProbeViewer {
            on: self.on,
            run: Some(run.to_path_buf()),
            computing: self.computing.take(),
            ..ProbeViewer::default()
        };
        let (tx, rx) = channel();
        let (run, data_dir) = (run.to_path_buf(), data_dir.to_path_buf());
        std::thread::spawn(move || {
            let _ = tx.send(load_dataset(&run, &data_dir));
        });
        self.loading = Some(rx);
    }

    /// Refreshes what changed on disk; returns the EL2N, opposing and spectrum views.
    pub fn refresh(&mut self, run: &Path, data_dir: &Path) -> Shown {
        self.select(run, data_dir);
        if let Some(rx) = &self.loading
            && let Ok(d) = rx.try_recv()
        {
            self.data = d.map(Arc::new);
            self.loading = None;
            self.dirty = true;
            // Labels and images arrive: draw the strips again.
            self.el2n = None;
            self.opposing = None;
        }
        let newest = checkpoint::list(run).last().map_or(0, |c| c.0);
        if self.el2n.as_ref().is_none_or(|e| e.0 != newest) {
            let view = match el2n_of_run(run) {
                Ok(Some((step, s))) => Some(el2n_view(step, &s, self.data.as_deref())),
                _ => None,
            };
            self.el2n = Some((newest, view));
            self.dirty = true;
        }
        let (offset, probes) = &mut self.opposing_log;
        let read = read_opposing(run, *offset, probes);
        if read != *offset || self.opposing.is_none() {
            *offset = read;
            let probes = &self.opposing_log.1;
            let data = self.data.as_deref();
            let view = probes.last().map(|p| {
                // Each example with its loss change since the probe before (its loss alone
                // at the first probe).
                let before = probes.len().checked_sub(2).map(|i| &probes[i]);
                let delta = |i: usize| {
                    let prev = before.and_then(|b| b.loss.get(i)).copied().unwrap_or(0.0);
                    (p.loss[i] - prev) as f64
                };
                let shown = |group: &[usize]| {
                    group
                        .iter()
                        .map(|&i| example(data, p.rows[i], delta(i)))
                        .collect()
                };
                OpposingView {
                    step: p.step,
                    rises: shown(&p.rise),
                    falls: shown(&p.fall),
                }
            });
            self.opposing = Some((view, (!probes.is_empty()).then(|| group_history(probes))));
            self.dirty = true;
        }
        let running = self.is_computing(run);
        if !running && self.computing.as_ref().is_some_and(|(_, r)| r == run) {
            self.computing = None;
            self.spectrum = None;
            self.dirty = true;
        }
        let files = spectrum_files(run);
        if self.spectrum.as_ref().is_none_or(|s| s.0 != files) {
            let (view, note) = spectrum_view(run);
            self.spectrum = Some((files, view, note));
            self.dirty = true;
        }
        let (_, view, note) = self.spectrum.as_ref().expect("just set");
        let note = if running {
            "computing the spectrum (descent probe hessian)…".to_string()
        } else {
            note.clone()
        };
        Shown {
            el2n: self.el2n.as_ref().and_then(|e| e.1.clone()),
            opposing: self.opposing.as_ref().and_then(|o| o.0.clone()),
            groups: self.opposing.as_ref().and_then(|o| o.1.clone()),
            spectrum: view.clone(),
            spectrum_note: note,
        }
    }

    /// Records the `descent probe hessian` child started for `run`.
    pub fn computing(&mut self, pid: u32, run: &Path) {
        self.computing = Some((pid, run.to_path_buf()));
        self.spectrum = None;
    }

    /// Whether the view changed since the last call (the UI redraws only when something did).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub fn is_computing(&self, run: &Path) -> bool {
        self.computing
            .as_ref()
            .is_some_and(|(pid, r)| r == run && crate::runs::process::pid_alive(*pid))
    }
}

/// The run's dataset as its experiment loads it (for labels and images); `None` for data
/// this viewer does not read (the hub) or on any error.
fn load_dataset(run: &Path, data_dir: &Path) -> Option<Dataset> {
    let cfg = run.join(CONFIG);
    let text = crate::config::read_text(&cfg).ok()?;
    let exp = Experiment::parse(&cfg, &text).ok()?;
    let d = &exp.data;
    match &d.source {
        DataSource::Builtin(name) => {
            descent_models::data::load_builtin(name, &d.params, exp.seed).ok()
        }
        DataSource::Path(p) => {
            descent_models::data::load_source(&data_dir.join(p), d.target.as_deref()).ok()
        }
        DataSource::Hub(_) => None,
    }
}

/// A row as the strips show it: its class name, the value, and its picture for image data
/// (one or three channels), each scaled to its own range.
fn example(data: Option<&Dataset>, row: usize, value: f64) -> ExampleView {
    let Some(d) = data.filter(|d| row < d.len()) else {
        return ExampleView {
            row,
            label: String::new(),
            value,
            image: None,
        };
    };
    let label = match &d.targets {
        Targets::Classes { labels, names } => names
            .get(labels[row] as usize)
            .cloned()
            .unwrap_or_else(|| labels[row].to_string()),
        Targets::Values(v) => format!("{:.3}", v[row]),
    };
    let image = match d.input_shape[..] {
        [c, h, w] if c == 1 || c == 3 => {
            let f = d.features();
            let x = &d.inputs[row * f..(row + 1) * f];
            let (lo, hi) = x
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let span = (hi - lo).max(1e-6);
            let px = |i: usize| ((x[i] - lo) / span * 255.0) as u8;
            let mut rgb = Vec::with_capacity(h * w * 3);
            for i in 0..h * w {
                for ch in 0..3 {
                    rgb.push(px(if c == 1 { i } else { ch * h * w + i }));
                }
            }
            Some(ImageView {
                label: label.clone(),
                width: w as u32,
                height: h as u32,
                rgb,
            })
        }
        _ => None,
    };
    ExampleView {
        row,
        label,
        value,
        image,
    }
}

fn el2n_view(
    step: u64,
    s: &descent_models::probes::el2n::Scores,
    data: Option<&Dataset>,
) -> El2nView {
    let means: Vec<(usize, f64)> = s
        .means()
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m?)))
        .collect();
    let mut histogram = vec![0u64; BINS];
    for &(_, m) in &means {
        let b = (m / std::f64::consts::SQRT_2 * BINS as f64) as usize;
        histogram[b.min(BINS - 1)] += 1;
    }
    let mut hardest = means.clone();
    hardest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    El2nView {
        step,
        scored: means.len(),
        histogram,
        hardest: hardest
            .iter()
            .take(SHOWN)
            .map(|&(r, m)| example(data, r, m))
            .collect(),
    }
}

fn spectrum_files(run: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run.join(HESSIAN_DIR)) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    v.sort();
    v
}

/// The newest spectrum as a log-density chart over λ, or why there is none.
fn spectrum_view(run: &Path) -> (Option<SpectrumView>, String) {
    let newest = spectra_of_run(run).into_iter().rev().find_map(|s| s.ok());
    let Some(s) = newest else {
        let log = std::fs::read_to_string(run.join(HESSIAN_DIR).join(PROBE_LOG)).ok();
        let last = log
            .as_deref()
            .and_then(|l| l.lines().rev().find(|l| !l.trim().is_empty()))
            .map(|l| format!("the last computation said: {l}"));
        return (
            None,
            last.unwrap_or_else(|| {
                "Press d to compute the Hessian's spectral density at the run's newest \
                 checkpoint (stochastic Lanczos quadrature; also descent probe hessian RUN)."
                    .into()
            }),
        );
    };
    let (lo, hi) = node_range(&s.runs);
    let pad = 0.05 * (hi - lo).max(1e-3);
    let n = 2000;
    let grid: Vec<f64> = (0..n)
        .map(|i| lo - pad + (hi - lo + 2.0 * pad) * i as f64 / (n - 1) as f64)
        .collect();
    let d = density(&s.runs, &grid);
    let peak = d.iter().cloned().fold(0.0, f64::max);
    let floor = peak * 1e-8;
    let y: Vec<f64> = d.iter().map(|&v| v.max(floor)).collect();
    let chart = ChartView {
        title: format!("Hessian spectral density · step {} (log)", s.step),
        series: vec![ChartSeries {
            name: "density".into(),
            x: Arc::new(grid),
            x_origin: 0.0,
            y: Arc::new(Values::from_slice(&y)),
        }],
        log_y: true,
        smoothing: 0.0,
        x_label: "λ".into(),
        markers: Vec::new(),
    };
    let summary = format!(
        "λmax {} · λmin {} · trace ≈ {} · {} outliers above λmax/10{} · {} params, batch {}",
        sig(s.lambda_max),
        sig(lo),
        sig(s.trace),
        s.outliers(),
        s.classes
            .map_or(String::new(), |c| format!(" ({c} classes)")),
        s.dim,
        s.batch
    );
    (
        Some(SpectrumView {
            step: s.step,
            chart,
            summary,
        }),
        String::new(),
    )
}

/// Four significant figures, in exponent form when very large or small.
pub fn sig(x: f64) -> String {
    if x != 0.0 && !(1e-3..1e5).contains(&x.abs()) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// The mean loss of the latest probe's two groups, and of the whole probe set, at every probe
/// of the run on the same probe set: the antiphase the paper describes shows here.
fn group_history(probes: &[Probe]) -> ChartView {
    let last = probes.last().expect("a probe");
    let all: Vec<&Probe> = probes.iter().filter(|p| p.rows == last.rows).collect();
    let steps: Arc<Vec<f64>> = Arc::new(all.iter().map(|p| p.step as f64).collect());
    let every: Vec<usize> = (0..last.loss.len()).collect();
    let series = |name: &str, group: &[usize]| ChartSeries {
        name: name.into(),
        x: steps.clone(),
        x_origin: 0.0,
        y: Arc::new(Values::from_slice(
            &all.iter().map(|p| p.mean(group)).collect::<Vec<_>>(),
        )),
    };
    ChartView {
        title: format!("opposing: step {}'s groups over time", last.step),
        series: [
            ("rose most", &last.rise),
            ("fell most", &last.fall),
            ("all", &every),
        ]
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(name, g)| series(name, g))
        .collect(),
        log_y: true,
        smoothing: 0.0,
        x_label: "step".into(),
        markers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_latest_groups_are_followed_back_over_every_probe() {
        let rows = vec![10, 11, 12];
        let p1 = Probe::new(5, rows.clone(), vec![1.0, 1.0, 1.0], None, 1);
        let p2 = Probe::new(10, rows.clone(), vec![2.0, 0.5, 1.0], Some(&p1.loss), 1);
        let p3 = Probe::new(15, rows.clone(), vec![0.5, 2.0, 1.0], Some(&p2.loss), 1);
        // Step 15's groups: row 11 rose most, row 10 fell most — in antiphase before.
        let c = group_history(&[p1, p2, p3]);
        let pts: Vec<Vec<(f64, f64)>> = c.series.iter().map(|s| s.points()).collect();
        assert_eq!(c.series[0].name, "rose most");
        assert_eq!(pts[0], vec![(5.0, 1.0), (10.0, 0.5), (15.0, 2.0)]);
        assert_eq!(pts[1], vec![(5.0, 1.0), (10.0, 2.0), (15.0, 0.5)]);
        assert_eq!(pts[2].len(), 3);
        // The first probe has no groups yet: only the whole set is drawn.
        let first = Probe::new(5, rows, vec![1.0, 1.0, 1.0], None, 1);
        assert_eq!(group_history(&[first]).series.len(), 1);
    }
}
