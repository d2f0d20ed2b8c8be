//! The RL pane's state: which logged step and which prompt of it the rollout viewer shows,
//! and the index of the selected run's `rollouts.jsonl` (byte offsets of each step's line,
//! extended as the run appends; only the line on screen is parsed).

use crate::runs::ROLLOUTS;
use crate::runs::records::rollouts_step;
use descent_panes::{CompletionView, RolloutView};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where each step's line of a `rollouts.jsonl` starts. A resumed run logs the steps after
/// its checkpoint again; the later line of a step wins.
#[derive(Debug, Default)]
struct Index {
    path: PathBuf,
    /// Bytes scanned: the end of the last whole line.
    scanned: u64,
    lines: BTreeMap<u64, (u64, u64)>,
}

impl Index {
    fn new(run: &Path) -> Index {
        Index {
            path: run.join(ROLLOUTS),
            ..Index::default()
        }
    }

    /// Reads the lines appended since the last call.
    fn refresh(&mut self) -> std::io::Result<()> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if f.metadata()?.len() < self.scanned {
            // Replaced by a shorter file: start over.
            *self = Index::new(self.path.parent().unwrap_or(Path::new(".")));
        }
        f.seek(SeekFrom::Start(self.scanned))?;
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = r.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                // Nothing more, or a line still being written.
                return Ok(());
            }
            if let Some(step) = rollouts_step(&line) {
                self.lines.insert(step, (self.scanned, n as u64));
            }
            self.scanned += n as u64;
        }
    }

    fn read(&self, step: u64) -> Result<serde_json::Value, String> {
        let (at, len) = self.lines[&step];
        let mut f = std::fs::File::open(&self.path).map_err(|e| e.to_string())?;
        f.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf).map_err(|e| e.to_string())?;
        serde_json::from_slice(&buf)
            .map_err(|e| format!("{} step {step}: {e}", self.path.display()))
    }
}

#[derive(Debug, Default)]
pub struct Rl {
    index: Option<Index>,
    /// The step shown; `None` follows the newest.
    step: Option<u64>,
    group: usize,
    /// The groups of the line last read, and where it starts: the view is rebuilt on every
    /// tick, the line read again only when another one is shown.
    shown: Option<(u64, Vec<serde_json::Value>)>,
}

impl Rl {
    /// Moves `delta` logged steps (past the newest: follow it again).
    pub fn move_step(&mut self, delta: isize) {
        let Some(ix) = &self.index else { return };
        let steps: Vec<u64> = ix.lines.keys().copied().collect();
        let Some(&last) = steps.last() else { return };
        let cur = self.step.unwrap_or(last);
        let pos = steps.partition_point(|&s| s < cur) as isize + delta;
        self.step = if pos >= steps.len() as isize - 1 && delta > 0 {
            None
        } else {
            Some(steps[pos.clamp(0, steps.len() as isize - 1) as usize])
        };
    }

    pub fn move_group(&mut self, delta: isize) {
        self.group = (self.group as isize + delta).max(0) as usize;
    }

    /// Follows `run`'s log (a new run starts at its newest step, first prompt) and returns
    /// the view of what is selected, or why there is nothing.
    pub fn view(&mut self, run: Option<&Path>) -> Result<RolloutView, String> {
        let Some(run) = run else {
            self.index = None;
            return Err("No run selected.".into());
        };
        if self
            .index
            .as_ref()
            .is_none_or(|i| i.path != run.join(ROLLOUTS))
        {
            *self = Rl {
                index: Some(Index::new(run)),
                ..Rl::default()
            };
        }
        let ix = self.index.as_mut().expect("set above");
        ix.refresh()
            .map_err(|e| format!("{}: {e}", ix.path.display()))?;
        let Some(&last) = ix.lines.keys().next_back() else {
            return Err("No rollouts logged yet: they appear after the run's first step.".into());
        };
        let step = self
            .step
            .filter(|s| ix.lines.contains_key(s))
            .unwrap_or(last);
        let position = (ix.lines.range(..=step).count(), ix.lines.len());
        let at = ix.lines[&step].0;
        if self.shown.as_ref().is_none_or(|(a, _)| *a != at) {
            let v = ix.read(step)?;
            let groups = v["groups"].as_array().cloned().unwrap_or_default();
            self.shown = Some((at, groups));
        }
        let groups = &self.shown.as_ref().expect("read above").1;
        if groups.is_empty() {
            return Err(format!("step {step} logged no rollouts"));
        }
        self.group = self.group.min(groups.len() - 1);
        let g = &groups[self.group];
        let max_score = groups
            .iter()
            .filter_map(|g| g["completions"].as_array())
            .flatten()
            .filter_map(|c| c["score"].as_array())
            .flatten()
            .filter_map(|s| s.as_f64())
            .fold(0.0, f64::max);
        let completions = g["completions"]
            .as_array()
            .map(|cs| cs.iter().map(completion).collect())
            .unwrap_or_default();
        Ok(RolloutView {
            step,
            position,
            following: self.step.is_none(),
            group: (self.group + 1, groups.len()),
            prompt: g["prompt"].as_str().unwrap_or_default().into(),
            answer: g["answer"].as_str().unwrap_or_default().into(),
            completions,
            max_score,
        })
    }
}

fn completion(c: &serde_json::Value) -> CompletionView {
    let list = |k: &str| c[k].as_array().cloned().unwrap_or_default();
    let (tokens, scores, kept) = (list("tokens"), list("score"), list("kept_tokens"));
    CompletionView {
        tokens: tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    t.as_str().unwrap_or_default().to_string(),
                    scores.get(i).and_then(|s| s.as_f64()).unwrap_or(0.0),
                    kept.get(i).and_then(|k| k.as_bool()).unwrap_or(true),
                )
            })
            .collect(),
        reward: c["reward"].as_f64().unwrap_or(f64::NAN),
        rewards: c["rewards"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_f64())).collect())
            .unwrap_or_default(),
        advantage: c["advantage"].as_f64().unwrap_or(0.0),
        kept: c["kept"].as_bool().unwrap_or(true),
        truncated: c["truncated"].as_bool().unwrap_or(false),
        errors: list("errors")
            .iter()
            .filter_map(|e| e.as_str().map(String::from))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(step: u64, prompt: &str) -> String {
        format!(
            "{{\"step\":{step},\"groups\":[{{\"prompt\":\"{prompt}\",\"answer\":\"2\",\
             \"completions\":[{{\"tokens\":[\"2\",\"<e>\"],\"score\":[0.5,0.1],\
             \"kept_tokens\":[true,false],\"reward\":1.0,\"rewards\":{{\"accuracy\":1.0}},\
             \"advantage\":0.7,\"kept\":true,\"truncated\":false,\"errors\":[]}}]}}]}}\n"
        )
    }

    #[test]
    fn the_viewer_follows_the_newest_step_and_a_relogged_step_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROLLOUTS);
        std::fs::write(&path, line(1, "a") + &line(2, "b")).unwrap();
        let mut rl = Rl::default();
        let v = rl.view(Some(dir.path())).unwrap();
        assert_eq!((v.step, v.position, v.following), (2, (2, 2), true));
        assert_eq!(v.completions[0].tokens[1], ("<e>".into(), 0.1, false));
        rl.move_step(-1);
        assert_eq!(rl.view(Some(dir.path())).unwrap().prompt, "a");
        // A resumed run logs step 2 again, then 3; a half-written line is not read yet.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all((line(2, "b again") + &line(3, "c") + "{\"step\":4,").as_bytes())
            .unwrap();
        rl.move_step(1);
        rl.move_step(1);
        let v = rl.view(Some(dir.path())).unwrap();
        assert_eq!((v.step, v.position, v.following), (3, (3, 3), true));
        rl.move_step(-1);
        assert_eq!(rl.view(Some(dir.path())).unwrap().prompt, "b again");
    }
}
