//! The app's state machine: events in, view updates out. No terminal I/O here, so it can be
//! driven by tests.

use super::keymap::{self, Action, Mode};
use super::tail::{self, ChartSettings, RunTail};
use super::views;
use crate::logging::LogRing;
use crate::queue;
use crate::runs::control::{self, Command};
use crate::runs::{self, RunInfo, spawn};
use crate::watcher::Update;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use descent_panes::{
    AppView, FilterView, Pane, PromptView, SystemView, Theme, UiState, list_len, selected_run,
    selected_runs,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;

/// How long a notice holds the status bar.
const NOTICE_FOR: std::time::Duration = std::time::Duration::from_secs(20);

/// Everything that can wake the UI.
pub enum AppEvent {
    Key(KeyEvent),
    Resize,
    Workspace(Box<Update>),
    System(Box<SystemView>),
    /// New lines in the log ring.
    Log,
    /// A Datasets/Checkpoints worker has a result.
    Browse,
    /// Slurm has answered about the runs' jobs.
    Jobs,
    /// The input reader failed; the UI cannot go on.
    InputClosed(String),
}

pub struct App {
    pub view: AppView,
    pub ui: UiState,
    pub quit: bool,
    log: Arc<LogRing>,
    /// Asks the system sampler for a fresh sample.
    sample: Option<Sender<()>>,
    /// The device spec of the workspace and what `auto` resolved to, for the status bar.
    device_spec: String,
    auto_device: Option<String>,
    /// The latest workspace state (for paths: experiment files, run folders).
    update: Option<Update>,
    /// The selected run's metrics, followed as they are written.
    tails: HashMap<PathBuf, RunTail>,
    /// The runs whose curves are on screen: the selected one first, then the marked ones.
    shown: Vec<PathBuf>,
    /// Runs marked for comparison (overlaid on the selected run's charts).
    marked: Vec<PathBuf>,
    charts: ChartSettings,
    /// The Datasets and Checkpoints panes' background work.
    browser: super::browse::Browser,
    /// The Sampler pane's models, settings and jobs.
    sampler: super::sampler::Sampler,
    /// The RL pane's rollout viewer.
    rl: super::rl::Rl,
    /// The Runs pane's probe view.
    probes: super::probes::ProbeViewer,
    /// The Checkpoints pane's talk box, and the model the open prompt will talk to.
    chat: super::chat::Chat,
    talk_to: Option<(PathBuf, String)>,
    /// What the open prompt asks for.
    prompt_for: PromptFor,
    /// What Slurm says of the runs' jobs, and how its thread wakes the UI.
    jobs: super::jobs::Jobs,
    jobs_wake: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The sweep view (`a`): the selected run's sweep ranked, its members overlaid.
    sweep_on: bool,
    /// The run that a second `X` moves to the trash.
    confirm_trash: Option<PathBuf>,
    /// The experiment whose large sweep waits for a second `W`.
    confirm_sweep: Option<String>,
    /// The sweep view's record, read once per sweep (it is written once, when made).
    sweep_record: Option<queue::sweep::Record>,
    /// When the status bar's notice was set: it gives the bar back to the workspace path
    /// after [`NOTICE_FOR`] (every notice is also in the Log pane).
    notice_since: Option<std::time::Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PromptFor {
    Lr,
    OpenPath,
    OpenData,
    Pull { dataset: bool },
    SamplerSetting,
    SamplerOpen,
    Talk,
}

/// Rows a page key moves.
const PAGE: isize = 10;

impl App {
    pub fn new(workspace: String, log: Arc<LogRing>, sample: Option<Sender<()>>) -> App {
        let mut view = AppView {
            theme: Theme::from_env(),
            ..AppView::default()
        };
        view.status.workspace = workspace;
        view.status.watch_mode = "starting".into();
        App {
            view,
            ui: UiState::default(),
            quit: false,
            log,
            sample,
            device_spec: "auto".into(),
            auto_device: None,
            update: None,
            tails: HashMap::new(),
            shown: Vec::new(),
            marked: Vec::new(),
            charts: ChartSettings::default(),
            browser: Default::default(),
            sampler: Default::default(),
            rl: Default::default(),
            probes: Default::default(),
            chat: Default::default(),
            talk_to: None,
            prompt_for: PromptFor::Lr,
            jobs: Default::default(),
            jobs_wake: None,
            sweep_on: false,
            confirm_sweep: None,
            confirm_trash: None,
            sweep_record: None,
            notice_since: None,
        }
    }

    /// Applies one event; returns whether the screen needs redrawing.
    pub fn handle(&mut self, ev: AppEvent) -> bool {
        match ev {
            AppEvent::Key(key) => {
                self.on_key(key);
                true
            }
            AppEvent::Resize => true,
            AppEvent::Workspace(update) => {
                self.on_workspace(*update);
                true
            }
            AppEvent::System(sample) => {
                self.auto_device = Some(sample.auto_device.clone());
                self.view.system = *sample;
                self.refresh_device_label();
                true
            }
            AppEvent::Log => {
                if self.view.pane == Pane::Log {
                    self.view.log = self.log.snapshot();
                    true
                } else {
                    false
                }
            }
            AppEvent::Browse => self.sync_browser(false),
            AppEvent::Jobs => {
                self.decorate_runs();
                true
            }
            AppEvent::InputClosed(why) => {
                tracing::error!("terminal input closed: {why}");
                self.quit = true;
                false
            }
        }
    }

    /// Called when nothing happened for a tick: keep live panes live. Returns whether the
    /// screen needs redrawing.
    pub fn tick(&mut self) -> bool {
        let expired = self.notice_since.is_some_and(|t| t.elapsed() >= NOTICE_FOR);
        if expired {
            self.view.notice = None;
            self.notice_since = None;
            // A second `X` or `W` confirms only while the question is on screen.
            self.confirm_trash = None;
            self.confirm_sweep = None;
        }
        expired | self.tick_pane()
    }

    fn tick_pane(&mut self) -> bool {
        match self.view.pane {
            Pane::System => {
                self.request_sample();
                false
            }
            Pane::Runs | Pane::Rl => {
                let charts = self.poll_tail();
                charts | self.probes.take_dirty()
            }
            Pane::Datasets | Pane::Checkpoints => self.sync_browser(false),
            Pane::Sampler => self.refresh_sampler(),
            _ => false,
        }
    }

    /// Re-reads the sampling jobs; returns whether the pane changed.
    fn refresh_sampler(&mut self) -> bool {
        let changed = self.sampler.refresh_jobs();
        if changed {
            self.view.sampler = self.sampler.view();
        }
        changed
    }

    /// The Sampler's models from the latest workspace state and the opened folders.
    fn rebuild_sampler(&mut self) {
        if let Some(u) = &self.update {
            let root = &u.workspace.root;
            let runs_dir = u.workspace.settings.runs_path(root);
            self.sampler.set_sources(&u.inventory, root, &runs_dir);
        }
        self.sampler.refresh_jobs();
        self.view.sampler = self.sampler.view();
    }

    /// r in the Sampler pane.
    fn start_sample(&mut self) {
        let Some(root) = self.update.as_ref().map(|u| u.workspace.root.clone()) else {
            return self.notice("the workspace is still loading".into());
        };
        let model = self.ui.selected(Pane::Sampler);
        let msg = match self.sampler.start(&root, model) {
            Ok(m) | Err(m) => m,
        };
        self.view.sampler = self.sampler.view();
        self.notice(msg);
    }

    /// Whether a run's metrics are still being read in: the loop should tick again at once.
    pub fn busy(&self) -> bool {
        matches!(self.view.pane, Pane::Runs | Pane::Rl) && self.tails.values().any(RunTail::behind)
    }

    /// Lets background work wake the event loop (see [`AppEvent::Browse`]).
    /// How the Slurm follower wakes the UI loop when Slurm has answered.
    pub fn set_jobs_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.jobs_wake = Some(wake);
    }

    pub fn set_browse_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.chat.set_waker(wake.clone());
        self.browser.set_waker(wake);
    }

    fn hub_cache(&self) -> Option<PathBuf> {
        self.update
            .as_ref()
            .and_then(|u| u.inventory.hub_cache.clone())
    }

    /// Asks for the selected dataset or checkpoint, takes in finished work and, when some came
    /// (or `force`), copies it into the view; true when the screen changed.
    fn sync_browser(&mut self, force: bool) -> bool {
        match self.view.pane {
            Pane::Datasets => {
                if let Some(spec) = descent_panes::selected_dataset(&self.view, &self.ui) {
                    let spec = match spec.strip_prefix("local:") {
                        Some(name) => self
                            .update
                            .as_ref()
                            .map(|u| u.inventory.data_dir.join(name).display().to_string())
                            .unwrap_or_default(),
                        None => spec,
                    };
                    self.browser.want_dataset(&spec, self.hub_cache());
                }
            }
            Pane::Checkpoints => {
                if let Some(e) = descent_panes::selected_checkpoint(&self.view, &self.ui) {
                    let source = e.source.clone();
                    self.browser.want_checkpoint(&source, self.hub_cache());
                }
            }
            _ => {}
        }
        let mut changed = self.browser.poll();
        if changed || force {
            self.show_browser();
        }
        let chat = self.chat.view();
        if chat != self.view.checkpoints.chat {
            self.view.checkpoints.chat = chat;
            changed = true;
        }
        changed || force
    }

    /// Copies the browser's state into the view: the one place the two panes' details,
    /// the pull and the opened paths reach the screen.
    fn show_browser(&mut self) {
        let b = &self.browser;
        let (d, c) = (&mut self.view.datasets, &mut self.view.checkpoints);
        d.detail = b.dataset.clone();
        d.pull = b.pull.clone();
        d.opened = b.opened_data.clone();
        c.detail = b.checkpoint.clone();
        c.pull = b.pull.clone();
    }

    /// Rebuilds the Datasets and Checkpoints lists from the latest inventory.
    fn rebuild_browse_views(&mut self) {
        if let Some(u) = &self.update {
            self.view.datasets = views::datasets_view(&u.workspace, &u.inventory);
            self.view.checkpoints =
                views::checkpoints_view(&u.workspace, &u.inventory, &self.browser.opened);
        }
        self.view.checkpoints.chat = self.chat.view();
        self.show_browser();
    }

    /// The folder of the run selected in the Runs pane.
    fn selected_run_info(&self) -> Option<&RunInfo> {
        let row = selected_run(&self.view, &self.ui)?;
        let u = self.update.as_ref()?;
        u.inventory
            .runs
            .iter()
            .find(|r| r.experiment == row.experiment && r.id == row.id)
    }

    /// Follows the metrics of the selected run and of the runs marked for comparison;
    /// returns whether the charts changed.
    fn poll_tail(&mut self) -> bool {
        // The charts on screen share the tails' series; let go of them first, so appending
        // to a series extends it in place instead of copying it.
        self.view.run_charts.clear();
        self.view.run_heatmap = None;
        self.view.rl.charts.clear();
        self.view.probes = None;
        let mut wanted: Vec<PathBuf> = self
            .selected_run_info()
            .map(|r| r.dir.clone())
            .into_iter()
            .collect();
        for m in self.sweep_members().iter().chain(&self.marked) {
            if !wanted.contains(m) {
                wanted.push(m.clone());
            }
        }
        self.tails.retain(|d, _| wanted.contains(d));
        let mut changed = wanted != self.shown;
        for d in &wanted {
            let t = self
                .tails
                .entry(d.clone())
                .or_insert_with(|| RunTail::new(d));
            changed |= t.poll();
            t.smooth(self.charts);
        }
        self.shown = wanted;
        self.redraw_charts();
        self.refresh_sweep_view();
        changed
    }

    fn redraw_charts(&mut self) {
        let tails: Vec<&RunTail> = self
            .shown
            .iter()
            .filter_map(|d| self.tails.get(d))
            .collect();
        if self.view.pane == Pane::Rl {
            self.view.rl.charts = tail::rl_charts(&tails, self.charts);
            self.refresh_rollouts();
            return;
        }
        if self.probes.on {
            let mut probes = self.probe_view(&tails);
            if let (Some(dir), Some(u)) = (self.shown.first(), &self.update) {
                let data_dir = u.workspace.settings.data_path(&u.workspace.root);
                let shown = self.probes.refresh(dir, &data_dir);
                probes.el2n = shown.el2n;
                probes.opposing = shown.opposing;
                probes.spectrum = shown.spectrum;
                probes.spectrum_note = shown.spectrum_note;
                // The latest groups followed back over the run, with the spikes the probes
                // marked, in place of the per-probe groups' chart.
                if let (Some(mut groups), Some(slot)) = (shown.groups, probes.charts.get_mut(3)) {
                    groups.markers = std::mem::take(&mut slot.markers);
                    *slot = groups;
                }
            }
            self.view.probes = Some(probes);
            return;
        }
        self.view.probes = None;
        self.view.run_charts = tail::charts(&tails, self.charts);
        self.view.run_heatmap = tails.first().map(|t| t.heatmap(self.charts));
    }

    /// The probe view of the selected run (`tails[0]`), re-reading the probes' files that
    /// changed.
    fn probe_view(&self, tails: &[&RunTail]) -> descent_panes::view::ProbesView {
        let mut v = descent_panes::view::ProbesView {
            charts: tail::probe_charts(tails, self.charts),
            ..Default::default()
        };
        let Some(first) = tails.first() else {
            v.note = "No run selected.".into();
            return v;
        };
        let recorded = tail::recorded_probes(first);
        v.note = if recorded.is_empty() {
            "This run records no probes yet. Turn them on in its experiment ([probes.coherence] \
             every = 25, [probes.sharpness] every = 200, [probes.opposing] every = 50; a running \
             run picks the edit up) · v: training charts"
                .into()
        } else {
            format!("probes: {} · v: charts · d: Hessian", recorded.join(", "))
        };
        if let (Some(b), Some(lr)) = (
            tail::last_extra(first, "coherence/hint_batch"),
            tail::last_extra(first, "coherence/hint_lr"),
        ) {
            v.hint = Some(format!(
                "B_noise ≈ {b:.0}: batches up to ≈ {b:.0} still pay, at a peak lr ≈ {} (linear \
                 rule for SGD, √ for Adam) — not a measurement",
                super::probes::sig(lr)
            ));
        }
        v
    }

    /// The rollout viewer of the RL pane's selected run, re-reading what was appended.
    fn refresh_rollouts(&mut self) {
        let dir = self.selected_run_info().map(|r| r.dir.clone());
        match self.rl.view(dir.as_deref()) {
            Ok(v) => {
                self.view.rl.rollouts = Some(v);
                self.view.rl.note.clear();
            }
            Err(why) => {
                self.view.rl.rollouts = None;
                self.view.rl.note = why;
            }
        }
    }

    fn notice(&mut self, text: String) {
        tracing::info!("{text}");
        self.view.notice = Some(text);
        self.notice_since = Some(std::time::Instant::now());
    }

    /// The selected experiment's file, if it is valid enough to run.
    fn selected_experiment(&self) -> Result<(String, std::path::PathBuf), String> {
        let u = self
            .update
            .as_ref()
            .ok_or("the workspace is still loading")?;
        let row = descent_panes::selected_experiment(&self.view, &self.ui)
            .ok_or("no experiment selected")?;
        let f = u
            .workspace
            .experiment(&row.name)
            .ok_or("the experiment file is gone")?;
        if !f.errors.is_empty() {
            return Err(format!(
                "{} has errors; fix them before starting a run",
                row.file
            ));
        }
        if let Some(exp) = &f.good {
            crate::runs::exec::preflight(&u.workspace, exp)?;
        }
        Ok((row.name.clone(), f.path.clone()))
    }

    /// `r` and `R`: the run goes to the workspace's executor — on this machine it starts
    /// at once when a slot is free and waits in the queue otherwise; on Slurm it is
    /// submitted (in the background: sbatch may be slow to answer).
    fn start_run(&mut self, resume: bool) {
        let result = (|| -> Result<String, String> {
            let u = self
                .update
                .as_ref()
                .ok_or("the workspace is still loading")?;
            let ws = &u.workspace;
            let (name, path) = self.selected_experiment()?;
            let dir = if resume {
                let r = self
                    .selected_run_info()
                    .ok_or("no run selected to resume")?;
                queue::requeue(&r.dir)?
            } else {
                let exp = ws
                    .experiment(&name)
                    .and_then(|f| f.good.clone())
                    .ok_or("the experiment file is gone")?;
                let req = queue::Request {
                    experiment: &exp,
                    file: &path,
                    overrides: Default::default(),
                    sweep: None,
                };
                queue::prepare(ws, &req, "queued").map_err(|e| e.to_string())?
            };
            let name = queue::run_name(&dir);
            if ws.settings.executor == crate::config::Executor::Slurm {
                let ws = ws.clone();
                std::thread::spawn(move || {
                    if let Err(e) = queue::submit(&ws, std::slice::from_ref(&dir), None) {
                        queue::mark_unsubmitted(&dir, &e);
                    }
                });
                return Ok(format!("submitting {name} to Slurm…"));
            }
            let said = queue::submit(ws, std::slice::from_ref(&dir), None).inspect_err(|e| {
                queue::mark_unsubmitted(&dir, e);
            })?;
            Ok(match (said.started, resume) {
                (1, false) => format!("started {name}: a slot was free"),
                (1, true) => format!("resumed {name}: a slot was free"),
                _ => format!("queued {name}: {}", said.message),
            })
        })();
        match result {
            Ok(msg) => {
                self.ui.run_selected = 0;
                self.notice(msg);
            }
            Err(e) => self.notice(e),
        }
    }

    /// `s`: a live run is asked to stop (it checkpoints first); one that waits is taken out
    /// of the queue. On Slurm, `descent queue cancel` does it in the background: it waits for
    /// the run's checkpoint before scancel.
    fn stop_selected(&mut self) {
        let Some(r) = self.selected_run_info().cloned() else {
            return self.notice("no run selected".into());
        };
        let Some(u) = self.update.as_ref() else {
            return;
        };
        let root = u.workspace.root.clone();
        let name = format!("{}/{}", r.experiment, r.id);
        if r.job.is_some() && (r.state.is_live() || r.state == runs::State::Queued) {
            let args = vec![
                "queue".to_string(),
                "cancel".into(),
                r.dir.display().to_string(),
                "--workspace".into(),
                root.display().to_string(),
            ];
            let log = r.dir.join("cancel.log");
            let msg = match spawn::spawn_session(&args, &root, &log) {
                Ok(_) => format!("stopping {name}: its checkpoint, then scancel"),
                Err(e) => format!("cannot start descent queue cancel: {e}"),
            };
            return self.notice(msg);
        }
        if r.state == runs::State::Queued {
            let msg = match queue::local::cancel(&root, &r.dir) {
                Ok(true) => format!("{name} cancelled; it had not started (R starts it)"),
                Ok(false) => match queue::mark_cancelled(&r.dir, "cancelled; it was in no queue") {
                    Ok(()) => format!("{name} was in no queue; marked cancelled"),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            return self.notice(msg);
        }
        self.control(Command::Stop);
    }

    /// `W`: makes the selected experiment's sweep; a large one asks for a second `W`.
    fn start_sweep(&mut self) {
        let result = (|| -> Result<String, String> {
            let u = self
                .update
                .as_ref()
                .ok_or("the workspace is still loading")?;
            let (name, path) = self.selected_experiment()?;
            let exp = u
                .workspace
                .experiment(&name)
                .and_then(|f| f.good.clone())
                .ok_or("the experiment file is gone")?;
            let confirmed = self.confirm_sweep.take().as_deref() == Some(name.as_str());
            match queue::sweep::start(&u.workspace, &exp, &path, confirmed) {
                Ok((r, started)) => {
                    tracing::info!("sweep {}: {}", r.id, r.submitted);
                    Ok(format!(
                        "sweep of {}: {started} started, {} queued — a ranks them",
                        r.members.len(),
                        r.members.len() - started
                    ))
                }
                Err(queue::sweep::Refused::Confirm { members, max }) => {
                    self.confirm_sweep = Some(name);
                    Err(format!(
                        "the sweep has {members} members, more than its max_members = {max}: \
                         press W again to start them all"
                    ))
                }
                Err(queue::sweep::Refused::Error(e)) => Err(e),
            }
        })();
        match result {
            Ok(m) => {
                self.ui.run_selected = 0;
                self.notice(m);
            }
            Err(m) => self.notice(m),
        }
    }

    /// `X`: the first press says what would go, the second moves the run to the trash.
    fn trash_selected(&mut self) {
        let Some(r) = self.selected_run_info().cloned() else {
            return self.notice("no run selected".into());
        };
        let Some(u) = self.update.as_ref() else {
            return;
        };
        let runs_dir = u.workspace.settings.runs_path(&u.workspace.root);
        let name = format!("{}/{}", r.experiment, r.id);
        if self.confirm_trash.take().as_ref() != Some(&r.dir) {
            let bytes = runs::trash::size_of(&r.dir);
            self.confirm_trash = Some(r.dir.clone());
            return self.notice(format!(
                "X again trashes {name} ({})",
                descent_panes::human_bytes(bytes)
            ));
        }
        match runs::trash::trash(&runs_dir, &r) {
            Ok(to) => {
                self.notice(format!(
                    "moved {name} to {} (move it back to restore it)",
                    to.display()
                ));
                // The run's tail and marks go with it.
                self.tails.remove(&r.dir);
                self.marked.retain(|d| *d != r.dir);
            }
            Err(e) => self.notice(e),
        }
    }

    /// `<` and `>`: the selected waiting run one place earlier or later.
    fn move_in_queue(&mut self, by: isize) {
        let Some(r) = self.selected_run_info().cloned() else {
            return self.notice("no run selected".into());
        };
        let Some(u) = self.update.as_ref() else {
            return;
        };
        let root = u.workspace.root.clone();
        let result = queue::local::read_queue(&root).and_then(|q| {
            let at = q.waiting.iter().position(|d| *d == r.dir).ok_or_else(|| {
                format!(
                    "{}/{} is not waiting in the local queue",
                    r.experiment, r.id
                )
            })?;
            let to = (at as isize + 1 + by).max(1) as usize;
            queue::local::move_to(&root, &r.dir, to)
        });
        match result {
            Ok(at) => self.notice(format!("{}/{} is now {at} in line", r.experiment, r.id)),
            Err(e) => self.notice(e),
        }
    }

    /// The other members of the selected run's sweep, while the sweep view is on.
    fn sweep_members(&self) -> Vec<PathBuf> {
        /// More curves than this on one chart cannot be told apart.
        const MOST: usize = 12;
        let Some(r) = self.selected_run_info().filter(|_| self.sweep_on) else {
            return Vec::new();
        };
        let Some(sweep) = r.launch.as_ref().and_then(|l| l.sweep.clone()) else {
            return Vec::new();
        };
        let Some(u) = self.update.as_ref() else {
            return Vec::new();
        };
        u.inventory
            .runs
            .iter()
            .filter(|o| o.dir != r.dir)
            .filter(|o| o.launch.as_ref().and_then(|l| l.sweep.as_ref()) == Some(&sweep))
            .take(MOST - 1)
            .map(|o| o.dir.clone())
            .collect()
    }

    /// What the runs table shows beyond the run folders: Slurm's word on each job (and
    /// which jobs to keep asking about), and the sweep view's ranking.
    fn decorate_runs(&mut self) {
        let Some(u) = self.update.as_ref() else {
            return;
        };
        let mut follow = Vec::new();
        for (row, info) in self
            .view
            .workspace
            .runs
            .iter_mut()
            .zip(u.inventory.runs.iter())
        {
            let Some(job) = &info.job else { continue };
            let id = job.slurm_id();
            if info.state.is_live() || info.state == runs::State::Queued {
                follow.push(id.clone());
            }
            if let Some(said) = self.jobs.describe(&id) {
                // A queued run whose job Slurm no longer has will never start.
                if info.state == runs::State::Queued && self.jobs.active(&id) == Some(false) {
                    row.message = Some(format!(
                        "its Slurm job {id} is gone and the run never started; R submits it again"
                    ));
                }
                row.job = Some(said);
            }
        }
        if let Some(wake) = &self.jobs_wake {
            let wake = wake.clone();
            self.jobs.follow(follow, move || wake());
        }
    }

    fn refresh_sweep_view(&mut self) {
        self.view.sweep = None;
        if !self.sweep_on || self.view.pane != Pane::Runs {
            return;
        }
        let Some(r) = self.selected_run_info() else {
            return;
        };
        let selected = r.dir.clone();
        let Some(id) = r.launch.as_ref().and_then(|l| l.sweep.clone()) else {
            return;
        };
        let Some(u) = self.update.as_ref() else {
            return;
        };
        if self.sweep_record.as_ref().is_none_or(|r| r.id != id) {
            self.sweep_record = queue::sweep::read(&u.workspace.root, &id);
        }
        let Some(record) = &self.sweep_record else {
            return;
        };
        let ranked = queue::sweep::rank(record, &u.inventory.runs);
        let count = |f: &dyn Fn(runs::State) -> bool| {
            ranked.iter().filter(|m| m.state.is_some_and(f)).count()
        };
        let mut summary = format!(
            "{} members: {} finished, {} running, {} queued, {} failed",
            ranked.len(),
            count(&|s| s == runs::State::Finished),
            count(&|s| s.is_live()),
            count(&|s| s == runs::State::Queued),
            count(&|s| s == runs::State::Failed),
        );
        let removed = ranked.iter().filter(|m| m.state.is_none()).count();
        if removed > 0 {
            summary.push_str(&format!(", {removed} removed"));
        }
        self.view.sweep = Some(descent_panes::SweepView {
            id,
            metric: queue::sweep::ranked_by(&record.metric, record.summary),
            goal: match record.goal {
                crate::config::sweep::Goal::Min => "min".into(),
                crate::config::sweep::Goal::Max => "max".into(),
            },
            summary,
            rows: ranked
                .into_iter()
                .map(|m| descent_panes::SweepMemberRow {
                    rank: m.rank,
                    member: m.member,
                    run: m
                        .dir
                        .file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into_owned()),
                    state: m.state_name(),
                    value: m.value,
                    overrides: m.overrides,
                    selected: m.dir == selected,
                })
                .collect(),
        });
    }

    /// Starts `descent probe hessian` for the selected run as a process of its own; the probe
    /// view shows the spectrum once it is written.
    fn compute_spectrum(&mut self) {
        let result = (|| -> Result<String, String> {
            let u = self
                .update
                .as_ref()
                .ok_or("the workspace is still loading")?;
            let r = self.selected_run_info().ok_or("no run selected")?.clone();
            if self.probes.is_computing(&r.dir) {
                return Err(format!(
                    "already computing the spectrum of {}/{}",
                    r.experiment, r.id
                ));
            }
            let root = u.workspace.root.clone();
            let dir = r.dir.join(crate::runs::probes::HESSIAN_DIR);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let args = vec![
                "probe".to_string(),
                "hessian".into(),
                r.dir.display().to_string(),
                "--workspace".into(),
                root.display().to_string(),
            ];
            let log = dir.join(super::probes::PROBE_LOG);
            let _ = std::fs::remove_file(&log);
            let pid = spawn::spawn_session(&args, &root, &log)
                .map_err(|e| format!("cannot start descent probe hessian: {e}"))?;
            self.probes.computing(pid, &r.dir);
            self.probes.on = true;
            Ok(format!(
                "computing the Hessian spectrum of {}/{} (pid {pid}); it shows in the probe view",
                r.experiment, r.id
            ))
        })();
        match result {
            Ok(m) | Err(m) => self.notice(m),
        }
        self.redraw_charts();
    }

    fn control(&mut self, command: Command) {
        let Some(r) = self.selected_run_info().cloned() else {
            return self.notice("no run selected".into());
        };
        let msg = match control::send(&r.dir, command) {
            Ok(_) => format!("{command} sent to {}/{}", r.experiment, r.id),
            Err(e) => e,
        };
        self.notice(msg);
    }

    fn answer_prompt(&mut self, text: &str) {
        match self.prompt_for {
            PromptFor::Lr => {}
            PromptFor::Talk => {
                if let Some((dir, label)) = self.talk_to.take() {
                    if text.trim().is_empty() {
                        return self.notice("an empty message; nothing sent".into());
                    }
                    if let Err(e) = self.chat.start(&dir, &label, text) {
                        self.notice(e);
                    }
                    self.view.checkpoints.chat = self.chat.view();
                }
                return;
            }
            PromptFor::OpenPath => {
                let path = PathBuf::from(text.trim());
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                if !self.browser.opened.contains(&path) {
                    self.browser.opened.insert(0, path);
                }
                self.rebuild_browse_views();
                self.ui.jump(Pane::Checkpoints, true, 1);
                return;
            }
            PromptFor::OpenData => {
                let path = PathBuf::from(text.trim());
                let path = std::fs::canonicalize(&path)
                    .unwrap_or(path)
                    .display()
                    .to_string();
                self.browser.opened_data.retain(|p| p != &path);
                self.browser.opened_data.insert(0, path);
                self.ui.jump(Pane::Datasets, true, 1);
                return;
            }
            PromptFor::SamplerSetting => {
                if let Err(e) = self.sampler.set_typed(text) {
                    self.notice(format!("{e}; the setting is unchanged"));
                }
                self.view.sampler = self.sampler.view();
                return;
            }
            PromptFor::SamplerOpen => {
                let path = PathBuf::from(text.trim());
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                self.open_in_sampler(path);
                return;
            }
            PromptFor::Pull { dataset } => {
                match self
                    .browser
                    .start_pull(text.trim(), dataset, self.hub_cache())
                {
                    Ok(()) => self.notice(format!("pulling {}; x cancels", text.trim())),
                    Err(e) => self.notice(e),
                }
                return;
            }
        }
        match text.trim().parse::<f64>() {
            Ok(v) => self.control(Command::Lr { value: v }),
            Err(_) => self.notice(format!(
                "{text:?} is not a number; the learning rate is unchanged"
            )),
        }
    }

    /// Adds a folder to the Sampler's models, selects it and shows the pane.
    fn open_in_sampler(&mut self, path: PathBuf) {
        self.sampler.opened.retain(|p| *p != path);
        self.sampler.opened.insert(0, path.clone());
        self.rebuild_sampler();
        let label = path.display().to_string();
        self.show(Pane::Sampler);
        self.view.filter = None;
        if let Some(i) = self
            .view
            .sampler
            .models
            .iter()
            .position(|m| m.label == label)
        {
            self.ui.jump(Pane::Sampler, true, 1);
            self.ui
                .move_by(Pane::Sampler, i as isize, self.view.sampler.models.len());
        }
    }

    fn request_sample(&self) {
        if let Some(tx) = &self.sample {
            let _ = tx.send(());
        }
    }

    fn on_workspace(&mut self, u: Update) {
        let ws = &u.workspace;
        self.view.workspace = views::workspace_view(ws, &u.inventory);
        self.view.status.active_runs = u
            .inventory
            .runs
            .iter()
            .filter(|r| r.state.is_live())
            .count();
        let s = &mut self.view.status;
        s.config_errors = self.view.workspace.errors.len();
        s.alert = ws
            .unavailable
            .as_ref()
            .map(|_| "workspace folder missing".to_string());
        s.watch_mode = u.mode.to_string();
        self.device_spec = ws.settings.device.to_string();
        self.refresh_device_label();
        // What happened to runs since the last read, for the Log pane (not on the first read).
        if let Some(old) = &self.update {
            for (bad, line) in views::run_changes(&old.inventory.runs, &u.inventory.runs) {
                if bad {
                    tracing::warn!("{line}");
                } else {
                    tracing::info!("{line}");
                }
            }
        }
        self.update = Some(u);
        self.decorate_runs();
        self.rebuild_browse_views();
        // The Sampler reads each run's model config and its jobs' reports: only while it shows
        // (showing it rebuilds). Workspace updates come with every run's status change.
        if self.view.pane == Pane::Sampler {
            self.rebuild_sampler();
        }
        self.poll_tail();
    }

    fn refresh_device_label(&mut self) {
        self.view.status.device = match (&self.device_spec[..], &self.auto_device) {
            ("auto", Some(d)) => format!("{d} (auto)"),
            (spec, _) => spec.to_string(),
        };
    }

    fn mode(&self) -> Mode {
        match &self.view.filter {
            _ if self.view.prompt.is_some() => Mode::Input,
            Some(f) if f.editing => Mode::Input,
            _ => Mode::Normal,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) {
        self.on_key_inner(key);
        // Keys move the selection or change the detail: show its (loading) state at once.
        if matches!(self.view.pane, Pane::Datasets | Pane::Checkpoints) {
            self.sync_browser(true);
        }
    }

    fn on_key_inner(&mut self, key: KeyEvent) {
        self.view.notice = None;
        let mode = self.mode();
        match keymap::lookup(mode, key) {
            Some(action) => self.apply(action),
            None if mode == Mode::Input => {
                if let KeyCode::Char(c) = key.code
                    && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                {
                    self.edit_input(|t| t.push(c));
                }
            }
            None => {}
        }
    }

    /// Edits whichever text is being typed: the prompt, else the filter.
    fn edit_input(&mut self, f: impl FnOnce(&mut String)) {
        if let Some(p) = self.view.prompt.as_mut() {
            f(&mut p.text);
        } else if let Some(filter) = self.view.filter.as_mut() {
            f(&mut filter.text);
            self.ui.reset(self.view.pane);
        }
    }

    pub fn apply(&mut self, action: Action) {
        // A large sweep is started by two `W` in a row, nothing between.
        if action != Action::StartSweep {
            self.confirm_sweep = None;
        }
        // Likewise a run goes to the trash on two `X` in a row.
        if action != Action::TrashRun {
            self.confirm_trash = None;
        }
        // While help is open it is the only thing on screen: it takes only close and quit.
        if self.view.help.is_some() {
            let scroll = &mut self.ui.help_scroll;
            match action {
                Action::ToggleHelp | Action::Back => self.view.help = None,
                Action::Quit => self.quit = true,
                Action::Down => *scroll += 1,
                Action::Up => *scroll = scroll.saturating_sub(1),
                Action::PageDown => *scroll += PAGE as usize,
                Action::PageUp => *scroll = scroll.saturating_sub(PAGE as usize),
                _ => {}
            }
            return;
        }
        let pane = self.view.pane;
        let len = list_len(&self.view, pane);
        if self.view.prompt.is_some() {
            match action {
                Action::AcceptInput => {
                    let text = self.view.prompt.take().map(|p| p.text).unwrap_or_default();
                    self.answer_prompt(&text);
                }
                Action::Back => self.view.prompt = None,
                Action::DeleteInputChar => self.edit_input(|t| {
                    t.pop();
                }),
                Action::Quit => self.quit = true,
                _ => {}
            }
            return;
        }
        // The RL pane lists GRPO experiments and their runs: the run keys act there too.
        let runs_pane = matches!(pane, Pane::Runs | Pane::Rl);
        let browse_pane = matches!(pane, Pane::Datasets | Pane::Checkpoints);
        if pane == Pane::Sampler && self.apply_sampler(action) {
            return;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::ShowPane(p) => self.show(p),
            Action::NextPane => self.show(pane.cycle(1)),
            Action::PrevPane => self.show(pane.cycle(-1)),
            Action::ToggleHelp => {
                self.ui.help_scroll = 0;
                self.view.help = Some(keymap::help_rows());
            }
            Action::EditFilter if pane.has_list() => {
                let text = self.view.filter.take().map(|f| f.text).unwrap_or_default();
                self.view.filter = Some(FilterView {
                    text,
                    editing: true,
                });
            }
            Action::EditFilter => {}
            Action::Back => {
                if self.view.filter.take().is_some() {
                    self.ui.reset(pane);
                }
            }
            Action::AcceptInput => match self.view.filter.as_mut() {
                Some(f) if f.text.is_empty() => self.view.filter = None,
                Some(f) => f.editing = false,
                None => {}
            },
            Action::DeleteInputChar => self.edit_input(|t| {
                t.pop();
            }),
            Action::StartRun if runs_pane => self.start_run(false),
            Action::ResumeRun if runs_pane => self.start_run(true),
            Action::TogglePause if runs_pane => {
                let paused =
                    selected_run(&self.view, &self.ui).is_some_and(|r| r.state == "paused");
                self.control(if paused {
                    Command::Resume
                } else {
                    Command::Pause
                });
            }
            Action::StopRun if runs_pane => self.stop_selected(),
            Action::TrashRun if runs_pane => self.trash_selected(),
            Action::StartSweep if pane == Pane::Runs => self.start_sweep(),
            Action::ToggleSweep if pane == Pane::Runs => {
                self.sweep_on = !self.sweep_on;
                let member = self
                    .selected_run_info()
                    .is_some_and(|r| r.launch.as_ref().is_some_and(|l| l.sweep.is_some()));
                self.notice(match (self.sweep_on, member) {
                    (true, true) => {
                        "sweep view: members ranked, their curves overlaid (a: back)".into()
                    }
                    (true, false) => {
                        "sweep view: select a sweep's run to see its members ranked".into()
                    }
                    (false, _) => "sweep view off".into(),
                });
                self.poll_tail();
                self.refresh_sweep_view();
            }
            Action::QueueEarlier if pane == Pane::Runs => self.move_in_queue(-1),
            Action::QueueLater if pane == Pane::Runs => self.move_in_queue(1),
            Action::CheckpointRun if runs_pane => self.control(Command::Checkpoint),
            Action::SetLr if runs_pane => {
                self.prompt_for = PromptFor::Lr;
                if let Some(r) = selected_run(&self.view, &self.ui) {
                    self.view.prompt = Some(PromptView {
                        label: format!("learning rate for {}/{}", r.experiment, r.id),
                        text: String::new(),
                    });
                }
            }
            Action::PrevRun | Action::NextRun if runs_pane => {
                let n = selected_runs(&self.view, &self.ui).len();
                let cur = self.ui.run_selected.min(n.saturating_sub(1));
                self.ui.run_selected = if action == Action::PrevRun {
                    cur.saturating_sub(1)
                } else {
                    (cur + 1).min(n.saturating_sub(1))
                };
                self.poll_tail();
            }
            Action::ToggleLogY if runs_pane => {
                self.charts.log_y = !self.charts.log_y;
                // The smoothed averages are on the scale drawn: the tails redo them.
                self.poll_tail();
            }
            Action::CycleSmoothing if runs_pane => {
                // Off → 0.6 → 0.9 → 0.99 → off.
                let weights = tail::SMOOTHINGS;
                self.charts.smoothing =
                    match weights.iter().position(|&w| w == self.charts.smoothing) {
                        None => weights[0],
                        Some(i) if i + 1 < weights.len() => weights[i + 1],
                        Some(_) => 0.0,
                    };
                self.poll_tail();
            }
            Action::ToggleMark if runs_pane => {
                if let Some(r) = self.selected_run_info().cloned() {
                    let name = format!("{}/{}", r.experiment, r.id);
                    if let Some(i) = self.marked.iter().position(|d| *d == r.dir) {
                        self.marked.remove(i);
                        self.notice(format!("{name} unmarked"));
                    } else {
                        self.marked.push(r.dir);
                        self.notice(format!(
                            "{name} marked: its curves stay on the charts for comparison"
                        ));
                    }
                    self.poll_tail();
                }
            }
            Action::ToggleHeatmap if runs_pane => {
                self.charts.update_ratios = !self.charts.update_ratios;
                self.redraw_charts();
            }
            Action::ToggleProbes if pane == Pane::Runs => {
                self.probes.on = !self.probes.on;
                self.notice(if self.probes.on {
                    "probe view: coherence, sharpness, EL2N, opposing signals, Hessian (v: back)"
                        .into()
                } else {
                    "training charts".into()
                });
                self.redraw_charts();
            }
            Action::ComputeSpectrum if pane == Pane::Runs => self.compute_spectrum(),
            Action::ToggleWallTime if runs_pane => {
                self.charts.wall_time = !self.charts.wall_time;
                self.redraw_charts();
            }
            Action::CycleMetric if pane == Pane::Runs => {
                self.charts.metric += 1;
                self.redraw_charts();
            }
            Action::StartRun
            | Action::ResumeRun
            | Action::TogglePause
            | Action::StopRun
            | Action::CheckpointRun
            | Action::SetLr
            | Action::PrevRun
            | Action::NextRun
            | Action::ToggleLogY
            | Action::CycleSmoothing
            | Action::ToggleWallTime
            | Action::CycleMetric
            | Action::ToggleMark
            | Action::ToggleHeatmap
            | Action::ToggleProbes
            | Action::ComputeSpectrum
            | Action::StartSweep
            | Action::TrashRun
            | Action::ToggleSweep
            | Action::QueueEarlier
            | Action::QueueLater => {}
            Action::Open if browse_pane => self.browser.tree_enter(),
            Action::ColumnsLeft if pane == Pane::Datasets => self.browser.scroll_columns(-4),
            Action::ColumnsRight if pane == Pane::Datasets => self.browser.scroll_columns(4),
            Action::DetailDown if pane == Pane::Datasets => self.browser.page(1),
            Action::DetailUp if pane == Pane::Datasets => self.browser.page(-1),
            Action::DetailDown if pane == Pane::Checkpoints => self.browser.tree_move(1),
            Action::DetailUp if pane == Pane::Checkpoints => self.browser.tree_move(-1),
            Action::OpenPath if pane == Pane::Datasets => {
                self.prompt_for = PromptFor::OpenData;
                self.view.prompt = Some(PromptView {
                    label: "open dataset (file or image folder path)".into(),
                    text: String::new(),
                });
            }
            Action::OpenPath if pane == Pane::Checkpoints => {
                self.prompt_for = PromptFor::OpenPath;
                self.view.prompt = Some(PromptView {
                    label: "open checkpoint (file or folder path)".into(),
                    text: String::new(),
                });
            }
            Action::Pull if browse_pane => {
                let dataset = pane == Pane::Datasets;
                self.prompt_for = PromptFor::Pull { dataset };
                self.view.prompt = Some(PromptView {
                    label: format!(
                        "pull {} from the hub (ORG/NAME)",
                        if dataset { "dataset" } else { "model" }
                    ),
                    text: String::new(),
                });
            }
            Action::CancelPull if browse_pane => {
                if !self.browser.cancel_pull() {
                    self.notice("no pull is running".into());
                }
            }
            Action::SampleCheckpoint if pane == Pane::Checkpoints => {
                match descent_panes::selected_checkpoint(&self.view, &self.ui) {
                    Some(c) => {
                        let cache = self.hub_cache();
                        match crate::sources::resolve(
                            &c.source,
                            crate::sources::RepoKind::Model,
                            cache.as_deref(),
                        ) {
                            Ok(path) => self.open_in_sampler(path),
                            Err(e) => self.notice(format!("{}: {e:#}", c.label)),
                        }
                    }
                    None => self.notice("no checkpoint selected".into()),
                }
            }
            Action::SampleCheckpoint => {}
            Action::Talk if pane == Pane::Checkpoints => {
                let Some(c) = descent_panes::selected_checkpoint(&self.view, &self.ui) else {
                    return self.notice("no checkpoint selected".into());
                };
                let cache = self.hub_cache();
                let dir = match crate::sources::resolve(
                    &c.source,
                    crate::sources::RepoKind::Model,
                    cache.as_deref(),
                ) {
                    Ok(d) => d,
                    Err(e) => return self.notice(format!("{}: {e:#}", c.label)),
                };
                if !super::chat::is_language_model(&dir) {
                    return self.notice(format!(
                        "{}: not a language model descent can talk to (it needs a config.json \
                         of the {} family and a tokenizer.json)",
                        c.label,
                        descent_models::lm::config::FAMILIES.join(", ")
                    ));
                }
                self.talk_to = Some((dir, c.label.clone()));
                self.prompt_for = PromptFor::Talk;
                self.view.prompt = Some(PromptView {
                    label: format!("message to {}", c.label),
                    text: String::new(),
                });
            }
            Action::Talk => {}
            Action::DetailDown | Action::DetailUp if pane == Pane::Rl => {
                self.rl
                    .move_step(if action == Action::DetailDown { 1 } else { -1 });
                self.refresh_rollouts();
            }
            Action::ColumnsLeft | Action::ColumnsRight if pane == Pane::Rl => {
                self.rl.move_group(if action == Action::ColumnsRight {
                    1
                } else {
                    -1
                });
                self.refresh_rollouts();
            }
            Action::Open
            | Action::DetailDown
            | Action::DetailUp
            | Action::OpenPath
            | Action::ColumnsLeft
            | Action::ColumnsRight
            | Action::Pull
            | Action::CancelPull => {}
            Action::Up => self.ui.move_by(pane, -1, len),
            Action::Down => self.ui.move_by(pane, 1, len),
            Action::PageUp => self.ui.move_by(pane, -PAGE, len),
            Action::PageDown => self.ui.move_by(pane, PAGE, len),
            Action::Top => self.ui.jump(pane, true, len),
            Action::Bottom => self.ui.jump(pane, false, len),
        }
        let moved = matches!(
            action,
            Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Top
                | Action::Bottom
        );
        if runs_pane && moved {
            self.poll_tail();
        }
    }

    /// The keys the Sampler pane gives a meaning of its own; false for the others.
    fn apply_sampler(&mut self, action: Action) -> bool {
        match action {
            Action::StartRun => self.start_sample(),
            Action::PrevRun => self.sampler.move_job(-1),
            Action::NextRun => self.sampler.move_job(1),
            Action::DetailDown => self.sampler.move_setting(1),
            Action::DetailUp => self.sampler.move_setting(-1),
            Action::ColumnsLeft | Action::ColumnsRight => self.sampler.step_setting(
                action == Action::ColumnsRight,
                self.ui.selected(Pane::Sampler),
            ),
            Action::Open => {
                let (label, text) = self.sampler.prompt();
                self.prompt_for = PromptFor::SamplerSetting;
                self.view.prompt = Some(PromptView { label, text });
            }
            Action::CancelPull => {
                let msg = match self.sampler.cancel_selected() {
                    Ok(m) | Err(m) => m,
                };
                self.notice(msg);
            }
            Action::OpenPath => {
                self.prompt_for = PromptFor::SamplerOpen;
                self.view.prompt = Some(PromptView {
                    label: "open a diffusion model (run, checkpoint or model folder path)".into(),
                    text: String::new(),
                });
            }
            _ => return false,
        }
        self.view.sampler = self.sampler.view();
        true
    }

    fn show(&mut self, pane: Pane) {
        if pane == self.view.pane {
            return;
        }
        self.view.pane = pane;
        // A filter belongs to the list it was typed for.
        self.view.filter = None;
        match pane {
            Pane::Log => self.view.log = self.log.snapshot(),
            Pane::System => self.request_sample(),
            Pane::Sampler => self.rebuild_sampler(),
            // The Runs and RL panes select runs from different lists.
            Pane::Runs | Pane::Rl => {
                self.ui.run_selected = 0;
                self.poll_tail();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyEvent;

    fn app() -> App {
        App::new("/ws".into(), Arc::new(LogRing::default()), None)
    }

    fn press(app: &mut App, keys: &str) {
        for c in keys.chars() {
            app.handle(AppEvent::Key(KeyEvent::new(
                KeyCode::Char(c),
                KeyModifiers::NONE,
            )));
        }
    }

    fn press_code(app: &mut App, code: KeyCode) {
        app.handle(AppEvent::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    #[test]
    fn number_keys_and_tab_switch_panes() {
        let mut a = app();
        press(&mut a, "6");
        assert_eq!(a.view.pane, Pane::System);
        press_code(&mut a, KeyCode::Tab);
        assert_eq!(a.view.pane, Pane::Log);
        press_code(&mut a, KeyCode::Tab);
        assert_eq!(a.view.pane, Pane::Runs);
        a.handle(AppEvent::Key(KeyEvent::new(
            KeyCode::BackTab,
            KeyModifiers::SHIFT,
        )));
        assert_eq!(a.view.pane, Pane::Log);
    }

    #[test]
    fn help_takes_only_scroll_close_and_quit() {
        let mut a = app();
        press(&mut a, "?");
        assert!(a.view.help.is_some());
        press(&mut a, "3");
        assert_eq!(a.view.pane, Pane::Runs, "keys under the help do nothing");
        press(&mut a, "jj");
        assert_eq!(a.ui.help_scroll, 2);
        press_code(&mut a, KeyCode::Esc);
        assert!(a.view.help.is_none());
        press(&mut a, "?q");
        assert!(a.quit);
    }

    #[test]
    fn a_filter_takes_text_until_enter_and_esc_clears_it() {
        let mut a = app();
        press(&mut a, "/mlq");
        assert!(!a.quit, "q is text while typing a filter");
        press_code(&mut a, KeyCode::Backspace);
        assert_eq!(a.view.filter.as_ref().unwrap().text, "ml");
        press_code(&mut a, KeyCode::Enter);
        assert!(!a.view.filter.as_ref().unwrap().editing);
        press(&mut a, "j");
        assert_eq!(
            a.view.filter.as_ref().unwrap().text,
            "ml",
            "j moves, it is not text now"
        );
        press_code(&mut a, KeyCode::Esc);
        assert!(a.view.filter.is_none());
        press(&mut a, "q");
        assert!(a.quit);
    }

    #[test]
    fn switching_panes_drops_the_filter() {
        let mut a = app();
        press(&mut a, "/x");
        press_code(&mut a, KeyCode::Enter);
        press(&mut a, "2");
        assert!(a.view.filter.is_none());
    }

    #[test]
    fn a_notice_gives_the_status_bar_back_after_a_while() {
        let mut a = app();
        press(&mut a, "W");
        assert_eq!(
            a.view.notice.as_deref(),
            Some("the workspace is still loading")
        );
        a.tick();
        assert!(a.view.notice.is_some(), "a fresh notice stays");
        a.confirm_trash = Some("/ws/runs/e/r".into());
        a.notice_since = Some(std::time::Instant::now() - NOTICE_FOR);
        assert!(a.tick(), "the bar is redrawn");
        assert!(a.view.notice.is_none());
        assert!(
            a.confirm_trash.is_none(),
            "no confirming a question no longer shown"
        );
    }

    #[test]
    fn the_status_bar_shows_what_auto_resolved_to() {
        let mut a = app();
        let sample = SystemView {
            auto_device: "cpu".into(),
            ..SystemView::default()
        };
        a.handle(AppEvent::System(Box::new(sample)));
        assert_eq!(a.view.status.device, "cpu (auto)");
    }

    #[test]
    fn sampler_keys_pick_change_and_type_the_next_jobs_settings() {
        let mut a = app();
        press(&mut a, "4");
        assert_eq!(a.view.pane, Pane::Sampler);
        let value = |a: &App, name: &str| {
            a.view
                .sampler
                .settings
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(value(&a, "guidance"), "cfg,ag,linear-ag");
        press(&mut a, "L");
        assert_eq!(value(&a, "guidance"), "cfg,ag");
        press(&mut a, "JLL");
        assert_eq!(value(&a, "scale w"), "4");
        press(&mut a, "H");
        assert_eq!(value(&a, "scale w"), "3.5");
        // Enter types a value; a bad one is refused and the setting is unchanged.
        press_code(&mut a, KeyCode::Enter);
        assert!(a.view.prompt.is_some());
        for _ in 0..5 {
            press_code(&mut a, KeyCode::Backspace);
        }
        press(&mut a, "-2");
        press_code(&mut a, KeyCode::Enter);
        assert_eq!(value(&a, "scale w"), "3.5");
        assert!(
            a.view
                .notice
                .as_deref()
                .is_some_and(|n| n.contains("--scale -2"))
        );
        press_code(&mut a, KeyCode::Enter);
        for _ in 0..5 {
            press_code(&mut a, KeyCode::Backspace);
        }
        press(&mut a, "7.5");
        press_code(&mut a, KeyCode::Enter);
        assert_eq!(value(&a, "scale w"), "7.5");
        // r before the workspace has loaded says so instead of failing quietly.
        press(&mut a, "r");
        assert_eq!(
            a.view.notice.as_deref(),
            Some("the workspace is still loading")
        );
    }
}
