//! The Datasets and Checkpoints panes' work off the UI thread: reading a dataset's summary and
//! pages, opening a checkpoint and computing a tensor's statistics, and following a
//! `descent pull` child process. Results come back over a channel; stale ones are dropped.

use crate::hub::Report;
use crate::{present, sources};
use descent_io::checkpoint::{self, Checkpoint, human_count};
use descent_io::data::{Dataset, RowCount, summarize};
use descent_io::tree::{self, Node};
use descent_panes::{
    CheckpointDetail, DatasetDetail, ImageView, PullView, TensorStatsView, TreeRow, human_bytes,
};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

pub const PAGE_ROWS: usize = 20;

enum Msg {
    Dataset(DatasetDetail, Option<Arc<Mutex<Dataset>>>),
    Page {
        key: String,
        start: u64,
        rows: Vec<Vec<String>>,
    },
    Checkpoint {
        key: String,
        result: Result<Checkpoint, String>,
    },
    Stats {
        key: String,
        view: TensorStatsView,
    },
    Pull(Report),
    PullExited,
}

/// Sends a worker's result and wakes the UI loop, which otherwise sleeps up to a second.
#[derive(Clone)]
struct Outbox {
    tx: Sender<Msg>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    fn send(&self, msg: Msg) -> bool {
        let ok = self.tx.send(msg).is_ok();
        (self.wake)();
        ok
    }
}

/// Datasets kept after moving away from them.
const RECENT: usize = 8;

/// When a dataset's file last changed (`None` for built-ins and unreadable paths).
fn stamp(spec: &str) -> Option<std::time::SystemTime> {
    std::fs::metadata(spec).and_then(|m| m.modified()).ok()
}

type Recent = (
    DatasetDetail,
    Arc<Mutex<Dataset>>,
    Option<std::time::SystemTime>,
);

pub struct Browser {
    out: Outbox,
    recent: Vec<Recent>,
    rx: Receiver<Msg>,
    pub dataset: Option<DatasetDetail>,
    table: Option<Arc<Mutex<Dataset>>>,
    pub checkpoint: Option<CheckpointDetail>,
    ckpt: Option<(Checkpoint, Vec<Node>)>,
    expanded: BTreeSet<Vec<usize>>,
    pub pull: Option<PullView>,
    child: Option<std::process::Child>,
    pub opened: Vec<PathBuf>,
    /// Dataset paths opened with `o`, newest first.
    pub opened_data: Vec<String>,
}

impl Default for Browser {
    fn default() -> Self {
        let (tx, rx) = channel();
        Browser {
            out: Outbox {
                tx,
                wake: Arc::new(|| {}),
            },
            rx,
            recent: Vec::new(),
            dataset: None,
            table: None,
            checkpoint: None,
            ckpt: None,
            expanded: BTreeSet::new(),
            pull: None,
            child: None,
            opened: Vec::new(),
            opened_data: Vec::new(),
        }
    }
}

impl Browser {
    /// How workers wake the UI loop when a result is ready.
    pub fn set_waker(&mut self, wake: Arc<dyn Fn() + Send + Sync>) {
        self.out.wake = wake;
    }

    /// Starts reading `spec` unless it is what is shown or being read.
    pub fn want_dataset(&mut self, spec: &str, hub_cache: Option<PathBuf>) {
        if self.dataset.as_ref().is_some_and(|d| d.key == spec) {
            return;
        }
        self.remember_dataset();
        // Coming back to a dataset read moments ago shows it at once, unless its file changed.
        let stamp = stamp(spec);
        if let Some(i) = self
            .recent
            .iter()
            .position(|r| r.0.key == spec && r.2 == stamp)
        {
            let (d, table, _) = self.recent.remove(i);
            self.dataset = Some(d);
            self.table = Some(table);
            return;
        }
        self.table = None;
        self.dataset = Some(DatasetDetail {
            key: spec.into(),
            loading: true,
            ..Default::default()
        });
        let (tx, key) = (self.out.clone(), spec.to_string());
        std::thread::spawn(move || {
            // The first page goes out before the statistics scan, which reads up to
            // 200,000 rows: a large file shows its rows at once.
            let first = |d: DatasetDetail| {
                let _ = tx.send(Msg::Dataset(d, None));
            };
            let (detail, table) = read_dataset(&key, hub_cache.as_deref(), &first);
            let _ = tx.send(Msg::Dataset(detail, table));
        });
    }

    /// Keeps the dataset on screen among the recent ones, if it was read completely.
    fn remember_dataset(&mut self) {
        if let (Some(d), Some(table)) = (self.dataset.take(), self.table.take())
            && !d.loading
        {
            let s = stamp(&d.key);
            self.recent.insert(0, (d, table, s));
            self.recent.truncate(RECENT);
        }
    }

    /// Scrolls the columns shown in the statistics and rows tables.
    pub fn scroll_columns(&mut self, delta: isize) {
        if let Some(d) = &mut self.dataset {
            let max = d.header.len().saturating_sub(1) as isize;
            d.col_offset = (d.col_offset as isize + delta).clamp(0, max.max(0)) as usize;
        }
    }

    /// Moves the rows table by `pages` pages.
    pub fn page(&mut self, pages: i64) {
        let (Some(d), Some(table)) = (&self.dataset, &self.table) else {
            return;
        };
        let start = (d.row_start as i64 + pages * PAGE_ROWS as i64).max(0) as u64;
        let (tx, key, table) = (self.out.clone(), d.key.clone(), table.clone());
        std::thread::spawn(move || {
            let rows = table
                .lock()
                .map(|mut t| t.page(start, PAGE_ROWS))
                .ok()
                .and_then(|r| r.ok());
            if let Some(rows) = rows.filter(|r| !r.is_empty()) {
                let rows = rows
                    .iter()
                    .map(|r| r.iter().map(|c| c.text()).collect())
                    .collect();
                let _ = tx.send(Msg::Page { key, start, rows });
            }
        });
    }

    pub fn want_checkpoint(&mut self, source: &str, hub_cache: Option<PathBuf>) {
        if self.checkpoint.as_ref().is_some_and(|c| c.key == source) {
            return;
        }
        self.ckpt = None;
        self.expanded.clear();
        self.checkpoint = Some(CheckpointDetail {
            key: source.into(),
            loading: true,
            ..Default::default()
        });
        let (tx, key) = (self.out.clone(), source.to_string());
        std::thread::spawn(move || {
            let result = sources::resolve(&key, sources::RepoKind::Model, hub_cache.as_deref())
                .map_err(|e| format!("{e:#}"))
                .and_then(|p| checkpoint::open(&p).map_err(|e| e.to_string()));
            let _ = tx.send(Msg::Checkpoint { key, result });
        });
    }

    /// Moves the tree selection.
    pub fn tree_move(&mut self, delta: isize) {
        if let Some(c) = &mut self.checkpoint {
            let max = c.tree.len().saturating_sub(1) as isize;
            c.tree_selected = (c.tree_selected as isize + delta).clamp(0, max.max(0)) as usize;
        }
    }

    /// Enter on the tree: a group opens or closes, a tensor gets its statistics.
    pub fn tree_enter(&mut self) {
        let Some((ck, nodes)) = &self.ckpt else {
            return;
        };
        let Some(c) = &self.checkpoint else { return };
        let rows = visible(nodes, &self.expanded);
        let Some((path, node)) = rows.get(c.tree_selected) else {
            return;
        };
        if let Some(i) = node.tensor {
            let t = ck.tensors[i].clone();
            let (tx, key) = (self.out.clone(), c.key.clone());
            if let Some(c) = &mut self.checkpoint {
                c.stats = Some(TensorStatsView {
                    name: t.name.clone(),
                    ..Default::default()
                });
            }
            std::thread::spawn(move || {
                let view = stats_view(&t);
                let _ = tx.send(Msg::Stats { key, view });
            });
        } else {
            let path = path.clone();
            if !self.expanded.remove(&path) {
                self.expanded.insert(path);
            }
            self.refresh_tree();
        }
    }

    fn refresh_tree(&mut self) {
        let (Some((ck, nodes)), Some(c)) = (&self.ckpt, &mut self.checkpoint) else {
            return;
        };
        c.tree = visible(nodes, &self.expanded)
            .into_iter()
            .map(|(path, n)| TreeRow {
                depth: path.len() - 1,
                name: n.name.clone(),
                what: match n.tensor {
                    Some(i) => format!(
                        "{} {}",
                        ck.tensors[i].dtype.name(),
                        ck.tensors[i].shape_text()
                    ),
                    None => format!("{} tensors", n.tensors()),
                },
                params: human_count(n.params),
                bytes: human_bytes(n.bytes),
                expanded: n.tensor.is_none().then(|| self.expanded.contains(&path)),
            })
            .collect();
        c.tree_selected = c.tree_selected.min(c.tree.len().saturating_sub(1));
    }

    /// Starts `descent pull` as a child process; its JSON lines feed the pull view.
    pub fn start_pull(
        &mut self,
        repo: &str,
        dataset: bool,
        cache: Option<PathBuf>,
    ) -> Result<(), String> {
        if self.child.is_some() {
            return Err("a pull is already running; x cancels it".into());
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "pull",
            repo,
            "--json",
            "--type",
            if dataset { "dataset" } else { "model" },
        ])
        .args(
            cache
                .iter()
                .flat_map(|c| [std::ffi::OsStr::new("--cache"), c.as_os_str()]),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start descent pull: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let tx = self.out.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(r) = serde_json::from_str::<Report>(&line) {
                    let _ = tx.send(Msg::Pull(r));
                }
            }
            let _ = tx.send(Msg::PullExited);
        });
        self.child = Some(child);
        self.pull = Some(PullView {
            repo: repo.into(),
            state: "starting".into(),
            ..Default::default()
        });
        Ok(())
    }

    /// Cancels a running pull; the `.part` file stays, so the next pull resumes.
    pub fn cancel_pull(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = child.kill();
        let _ = child.wait();
        if let Some(p) = &mut self.pull {
            p.state = "cancelled (pull again to resume)".into();
        }
        true
    }

    /// Takes in finished work; true when something on screen changed.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        while let Ok(msg) = self.rx.try_recv() {
            changed = true;
            match msg {
                Msg::Dataset(d, table) => {
                    if let Some(old) = self.dataset.as_ref().filter(|x| x.key == d.key) {
                        let col_offset = old.col_offset;
                        self.dataset = Some(DatasetDetail { col_offset, ..d });
                        if table.is_some() {
                            self.table = table;
                        }
                    }
                }
                Msg::Page { key, start, rows } => {
                    if let Some(d) = self.dataset.as_mut().filter(|d| d.key == key) {
                        d.row_start = start;
                        d.rows = rows;
                    }
                }
                Msg::Checkpoint { key, result } => {
                    let Some(c) = self.checkpoint.as_mut().filter(|c| c.key == key) else {
                        continue;
                    };
                    c.loading = false;
                    match result {
                        Ok(ck) => {
                            c.summary = std::iter::once(("format".to_string(), ck.format.clone()))
                                .chain(crate::present::checkpoint_summary(&ck))
                                .collect();
                            let nodes = tree::build(&ck.tensors);
                            // Open the first level so the tree shows its groups at once.
                            self.expanded = (0..nodes.len())
                                .filter(|_| nodes.len() < 8)
                                .map(|i| vec![i])
                                .collect();
                            self.ckpt = Some((ck, nodes));
                            self.refresh_tree();
                        }
                        Err(e) => c.error = Some(e),
                    }
                }
                Msg::Stats { key, view } => {
                    if let Some(c) = self.checkpoint.as_mut().filter(|c| c.key == key) {
                        c.stats = Some(view);
                    }
                }
                Msg::Pull(r) => self.on_report(r),
                Msg::PullExited => {
                    if let Some(mut child) = self.child.take() {
                        let ok = child.wait().is_ok_and(|s| s.success());
                        if let Some(p) = self
                            .pull
                            .as_mut()
                            .filter(|p| p.state == "downloading" || p.state == "starting")
                        {
                            p.state = if ok {
                                "finished".into()
                            } else {
                                "failed".into()
                            };
                        }
                    }
                }
            }
        }
        changed
    }

    fn on_report(&mut self, r: Report) {
        let Some(p) = &mut self.pull else { return };
        match r {
            Report::Files { count, .. } => {
                p.files = count;
                p.state = "downloading".into();
            }
            Report::Progress {
                file,
                done,
                total,
                bytes_per_s,
            } => {
                (p.file, p.done, p.total, p.bytes_per_s) = (file, done, total, bytes_per_s);
                p.state = "downloading".into();
            }
            Report::Done { .. } => p.files_done += 1,
            Report::Finished { snapshot } => p.state = format!("finished: {}", snapshot.display()),
            Report::Error { message } => p.state = format!("failed: {message}"),
        }
    }
}

fn visible<'a>(nodes: &'a [Node], expanded: &BTreeSet<Vec<usize>>) -> Vec<(Vec<usize>, &'a Node)> {
    tree::visible(nodes, &|p| expanded.contains(p))
}

fn read_dataset(
    spec: &str,
    hub_cache: Option<&std::path::Path>,
    first_page: &dyn Fn(DatasetDetail),
) -> (DatasetDetail, Option<Arc<Mutex<Dataset>>>) {
    let mut d = DatasetDetail {
        key: spec.into(),
        ..Default::default()
    };
    let mut table = match sources::open_dataset(spec, hub_cache) {
        Ok(t) => t,
        Err(e) => {
            d.error = Some(format!("{e:#}"));
            return (d, None);
        }
    };
    d.header = table.columns().iter().map(|c| c.name.clone()).collect();
    match table.page(0, PAGE_ROWS) {
        Ok(rows) => {
            d.rows = rows
                .iter()
                .map(|r| r.iter().map(|c| c.text()).collect())
                .collect()
        }
        Err(e) => d.error = Some(e.to_string()),
    }
    first_page(DatasetDetail {
        loading: true,
        info: vec![
            ("format".into(), table.format().into()),
            ("rows".into(), table.rows().to_string()),
        ],
        ..d.clone()
    });
    match summarize(&mut table, None, 24) {
        Ok(s) => {
            d.info = vec![
                ("format".into(), s.format.clone()),
                ("rows".into(), s.rows.to_string()),
            ];
            if let Some(p) = table.path() {
                d.info.insert(0, ("path".into(), p.display().to_string()));
            }
            let exact = matches!(s.rows, RowCount::Exact(n) if n == s.scanned);
            if !exact {
                d.info.push((
                    "statistics".into(),
                    format!("over the first {} rows", s.scanned),
                ));
            }
            d.columns = s
                .columns
                .iter()
                .map(|c| present::column_cells(c, descent_panes::chart::fmt_tick))
                .collect();
            d.label = s.label.clone();
            d.classes_more = s
                .classes_capped
                .then(|| format!("≥{} classes (counting stopped)", s.classes.len()));
            d.classes = s.classes;
            d.images = s
                .images
                .into_iter()
                .map(|i| ImageView {
                    label: i.label,
                    width: i.width,
                    height: i.height,
                    rgb: i.rgb,
                })
                .collect();
            d.notes = s.notes;
        }
        Err(e) => d.error = Some(e.to_string()),
    }
    (d, Some(Arc::new(Mutex::new(table))))
}

fn stats_view(t: &descent_io::tensor::TensorInfo) -> TensorStatsView {
    let mut v = TensorStatsView {
        name: t.name.clone(),
        ..Default::default()
    };
    match descent_io::stats::tensor_stats(t) {
        Ok(s) => {
            v.lines = present::tensor_lines(t, &s);
            v.range = (s.min, s.max);
            v.histogram = s.histogram;
        }
        Err(e) => v.error = Some(e.to_string()),
    }
    v
}
