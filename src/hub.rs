//! `descent pull`: repositories from the Hugging Face hub into the cache layout of the Python
//! `huggingface_hub` (`models--org--name/{blobs,snapshots,refs}`), through the hf-hub crate.
//! Honours HF_ENDPOINT, HF_TOKEN, HF_HOME and HF_HUB_OFFLINE; an interrupted download resumes
//! from its `.part` file; sizes are checked. The token is sent to the hub and nowhere else: it
//! is never printed, logged or written.

use crate::sources::{RepoKind, default_hub_cache};
use anyhow::{Context, bail};
use clap::Args;
use hf_hub::api::Progress;
use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug, Clone)]
pub struct PullArgs {
    /// ORG/NAME on the hub
    pub repo: String,
    /// What kind of repository
    #[arg(long = "type", value_enum, default_value_t = Kind::Model)]
    pub kind: Kind,
    /// Branch, tag or commit
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Only files matching these globs (e.g. "*.safetensors" "config.json"); default: all
    /// files except pickle weights
    #[arg(long, num_args = 1..)]
    pub include: Vec<String>,
    /// Progress as JSON lines on stdout (what the TUI reads)
    #[arg(long)]
    pub json: bool,
    /// The hub cache folder (default: $HF_HOME/hub, else ~/.cache/huggingface/hub)
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Model,
    Dataset,
}

impl From<Kind> for RepoKind {
    fn from(k: Kind) -> RepoKind {
        match k {
            Kind::Model => RepoKind::Model,
            Kind::Dataset => RepoKind::Dataset,
        }
    }
}

/// Progress lines the TUI parses (`--json`).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Report {
    Files {
        count: usize,
        skipped: Vec<String>,
    },
    Progress {
        file: String,
        done: u64,
        total: u64,
        bytes_per_s: f64,
    },
    Done {
        file: String,
        path: PathBuf,
    },
    Finished {
        snapshot: PathBuf,
    },
    Error {
        message: String,
    },
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes" | "ON" | "on"))
}

fn token(cache: &Cache) -> Option<String> {
    std::env::var("HF_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| cache.token())
}

pub fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let emit = move |r: &Report| {
        if json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
            let _ = out.flush();
        }
    };
    match run_pull(&args, &emit) {
        Ok(snapshot) => {
            emit(&Report::Finished {
                snapshot: snapshot.clone(),
            });
            if !json {
                println!("{}", snapshot.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            emit(&Report::Error {
                message: format!("{e:#}"),
            });
            Err(e)
        }
    }
}

fn run_pull(args: &PullArgs, emit: &dyn Fn(&Report)) -> anyhow::Result<PathBuf> {
    check_repo_id(&args.repo)?;
    let cache_dir = match &args.cache {
        Some(c) => c.clone(),
        None => default_hub_cache().context("no hub cache folder: set HF_HOME")?,
    };
    let cache = Cache::new(cache_dir.clone());
    let kind = match args.kind {
        Kind::Model => RepoType::Model,
        Kind::Dataset => RepoType::Dataset,
    };
    let repo = Repo::with_revision(args.repo.clone(), kind, args.revision.clone());
    let includes: Vec<glob::Pattern> = args
        .include
        .iter()
        .map(|g| {
            glob::Pattern::new(g).with_context(|| format!("--include {g:?} is not a valid glob"))
        })
        .collect::<anyhow::Result<_>>()?;
    let explicit = |f: &str| includes.iter().any(|p| p.matches(f));
    let wanted = |f: &str| includes.is_empty() || explicit(f);

    if offline() {
        return from_cache(&cache_dir, &args.repo, args.kind.into(), &wanted);
    }
    let mut builder = ApiBuilder::from_cache(cache.clone())
        .with_progress(false)
        .with_retries(3)
        .with_token(token(&cache));
    let endpoint = std::env::var("HF_ENDPOINT")
        .map(|ep| ep.trim_end_matches('/').to_string())
        .unwrap_or_else(|_| "https://huggingface.co".into());
    builder = builder.with_endpoint(endpoint.clone());
    let to_error = |e| hub_error(&args.repo, &endpoint, e);
    let api = builder.build().map_err(to_error)?;
    let api_repo = api.repo(repo.clone());
    let info = api_repo.info().map_err(to_error)?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for s in info.siblings {
        let f = s.rfilename;
        if let Err(why) = descent_io::safety::check_relative(&f) {
            skipped.push(format!("{f}: refused, {why}"));
        } else if descent_io::safety::is_pickle(Path::new(&f)) && !explicit(&f) {
            skipped.push(format!(
                "{f}: pickle weights are not downloaded (they can run code when loaded)"
            ));
        } else if wanted(&f) {
            files.push(f);
        }
    }
    for s in skipped.iter().filter(|_| !args.json) {
        eprintln!("descent pull: skipped {s}");
    }
    emit(&Report::Files {
        count: files.len(),
        skipped: skipped.clone(),
    });
    if files.is_empty() {
        bail!(
            "{}: no files to download{}",
            args.repo,
            if includes.is_empty() {
                ""
            } else {
                " match --include"
            }
        );
    }
    // The cache answers only while its ref still names the commit the hub reports; after a
    // new commit on the branch, files are fetched again.
    let cached_ref = std::fs::read_to_string(
        cache_dir
            .join(repo.folder_name())
            .join("refs")
            .join(&args.revision),
    );
    let current = cached_ref.is_ok_and(|c| c.trim() == info.sha);
    let mut snapshot = None;
    for f in &files {
        let progress = Reporter::new(f, emit, args.json);
        let path = match cache.repo(repo.clone()).get(f).filter(|_| current) {
            Some(p) => p,
            None => api_repo
                .download_with_progress(f, progress.clone())
                .map_err(to_error)?,
        };
        let expected = progress.total();
        let got = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if expected > 0 && got != expected {
            bail!(
                "{}: {f}: size check failed: the hub announced {expected} bytes, the cache holds {got}",
                args.repo
            );
        }
        emit(&Report::Done {
            file: f.clone(),
            path: path.clone(),
        });
        snapshot = path
            .ancestors()
            .nth(Path::new(f).components().count())
            .map(Path::to_path_buf);
    }
    snapshot.context("no snapshot folder")
}

/// Offline: the snapshot must already hold what was asked for.
fn from_cache(
    cache: &Path,
    repo: &str,
    kind: RepoKind,
    wanted: &dyn Fn(&str) -> bool,
) -> anyhow::Result<PathBuf> {
    let snap = crate::sources::hub_snapshot(cache, repo, kind)
        .map_err(|e| anyhow::anyhow!("HF_HUB_OFFLINE is set and {e}"))?;
    let any = crate::sources::files_under(&snap)
        .iter()
        .any(|f| wanted(&f.strip_prefix(&snap).unwrap_or(f).to_string_lossy()));
    if !any {
        bail!("HF_HUB_OFFLINE is set and the cached {repo} holds no files matching --include");
    }
    Ok(snap)
}

fn check_repo_id(repo: &str) -> anyhow::Result<()> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let parts: Vec<&str> = repo.split('/').collect();
    if !(parts.len() == 2 && parts.iter().all(|p| ok_part(p))
        || parts.len() == 1 && ok_part(parts[0]))
    {
        bail!("{repo:?} is not a repository id (ORG/NAME: letters, digits, '-', '_', '.')");
    }
    Ok(())
}

/// Turns hf-hub's errors into what the user can act on. Never includes the token: ureq's
/// errors name the URL and status, not the request headers.
fn hub_error(repo: &str, endpoint: &str, e: ApiError) -> anyhow::Error {
    if let ApiError::RequestError(r) = &e
        && !matches!(r.as_ref(), ureq::Error::StatusCode(_))
    {
        return anyhow::anyhow!(
            "{repo}: cannot reach the hub at {endpoint} ({r}); check the network or HF_ENDPOINT, \
             or set HF_HUB_OFFLINE=1 to use the cache"
        );
    }
    match http_status(&e) {
        Some(s @ (401 | 403)) => anyhow::anyhow!(
            "{repo}: the hub refused access ({s}): the repository is private or gated, or HF_TOKEN \
             is missing or wrong"
        ),
        Some(404) => {
            anyhow::anyhow!("{repo}: not found on the hub (check the name, --type and --revision)")
        }
        Some(s) => anyhow::anyhow!("{repo}: the hub answered HTTP {s}; try again later"),
        None => anyhow::anyhow!("{repo}: {e}"),
    }
}

/// The HTTP status behind an error, looking through hf-hub's retry wrapper.
fn http_status(e: &ApiError) -> Option<u16> {
    match e {
        ApiError::RequestError(r) => match r.as_ref() {
            ureq::Error::StatusCode(s) => Some(*s),
            _ => None,
        },
        ApiError::TooManyRetries(inner) => http_status(inner),
        _ => None,
    }
}

/// Bytes, rate and ETA for one file, to the terminal (indicatif) or as JSON lines.
#[derive(Clone)]
struct Reporter<'a> {
    file: String,
    emit: &'a dyn Fn(&Report),
    /// JSON lines replace the terminal bar.
    json: bool,
    state: std::rc::Rc<std::cell::RefCell<State>>,
}

struct State {
    total: u64,
    done: u64,
    started: Instant,
    /// Where this attempt started (a resumed download starts past zero).
    start_done: Option<u64>,
    last: Option<Instant>,
    bar: Option<indicatif::ProgressBar>,
}

impl<'a> Reporter<'a> {
    fn new(file: &str, emit: &'a dyn Fn(&Report), json: bool) -> Self {
        Reporter {
            file: file.into(),
            emit,
            json,
            state: std::rc::Rc::new(std::cell::RefCell::new(State {
                total: 0,
                done: 0,
                started: Instant::now(),
                start_done: None,
                last: None,
                bar: None,
            })),
        }
    }

    fn total(&self) -> u64 {
        self.state.borrow().total
    }

    fn report(&self, force: bool) {
        let mut s = self.state.borrow_mut();
        let now = Instant::now();
        if !force && s.last.is_some_and(|l| now - l < Duration::from_millis(100)) {
            return;
        }
        s.last = Some(now);
        let secs = (now - s.started).as_secs_f64().max(1e-3);
        let rate = (s.done - s.start_done.unwrap_or(0)) as f64 / secs;
        if let Some(b) = &s.bar {
            b.set_position(s.done);
        }
        (self.emit)(&Report::Progress {
            file: self.file.clone(),
            done: s.done,
            total: s.total,
            bytes_per_s: rate,
        });
    }
}

impl Progress for Reporter<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        let mut s = self.state.borrow_mut();
        // hf-hub calls init on every attempt, then update(offset) with the resume offset.
        s.total = size as u64;
        s.done = 0;
        s.start_done = None;
        s.started = Instant::now();
        if s.bar.is_none() && !self.json && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new(size as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{msg:30!} {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec:>12} ETA {eta:>4} {wide_bar}",
            );
            bar.set_style(style.unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
            bar.set_message(self.file.clone());
            s.bar = Some(bar);
        }
    }

    fn update(&mut self, size: usize) {
        {
            let mut s = self.state.borrow_mut();
            s.done += size as u64;
            if s.start_done.is_none() {
                s.start_done = Some(s.done);
            }
        }
        self.report(false);
    }

    fn finish(&mut self) {
        self.report(true);
        if let Some(b) = self.state.borrow_mut().bar.take() {
            b.finish_and_clear();
        }
    }
}
