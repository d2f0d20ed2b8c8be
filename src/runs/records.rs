//! The records of `metrics.jsonl` and `events.jsonl`, and append-only writing.
//!
//! Numbers that are NaN or ±Inf are written as the strings `"NaN"`, `"inf"`, `"-inf"` (JSON
//! has no such numbers), so a divergence is recorded, never dropped.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// An f64 that survives JSON whatever its value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        Ok(Num(match Raw::deserialize(d)? {
            Raw::N(v) => v,
            Raw::S(s) => match s.as_str() {
                "inf" | "Infinity" => f64::INFINITY,
                "-inf" | "-Infinity" => f64::NEG_INFINITY,
                _ => f64::NAN,
            },
        }))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamRecord {
    pub grad_l2: Num,
    pub update_ratio: Num,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Metric {
    Train {
        step: u64,
        /// Unix seconds.
        time: f64,
        loss: Num,
        grad_l2: Num,
        grad_l1: Num,
        lr: Num,
        clip_scale: Num,
        examples_per_s: Num,
        params: BTreeMap<String, ParamRecord>,
    },
    Eval {
        step: u64,
        time: f64,
        loss: Num,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accuracy: Option<Num>,
    },
}

impl Metric {
    pub fn step(&self) -> u64 {
        match self {
            Metric::Train { step, .. } | Metric::Eval { step, .. } => *step,
        }
    }
}

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: f64,
    pub step: u64,
    /// `start`, `resume`, `pause`, `unpause`, `stop`, `lr`, `checkpoint`, `nan`, `config`,
    /// `finish`, `fail`.
    pub event: String,
    pub message: String,
}

/// Anything recorded at a training step.
pub trait Stepped {
    fn step(&self) -> u64;
}

impl Stepped for Metric {
    fn step(&self) -> u64 {
        Metric::step(self)
    }
}

/// A step-ordered list of records that the resume rule acts on.
pub trait StepLog {
    /// Drops the records at steps ≥ `step` (all at the end, since the list is in step order).
    fn truncate_from(&mut self, step: u64);
}

/// Amortised O(1) per record, since an ordinary append drops nothing.
impl<R: Stepped> StepLog for Vec<R> {
    fn truncate_from(&mut self, step: u64) {
        while self.last().is_some_and(|r| r.step() >= step) {
            self.pop();
        }
    }
}

/// The resume rule. A resumed run logs the steps after its checkpoint again, and the later
/// records win: a training record at step `s` drops everything recorded earlier for steps
/// ≥ `s` (training records and evaluations), an evaluation at `s` drops earlier evaluations
/// at steps ≥ `s`. Readers call these before adding a record, whatever they keep.
pub fn before_train(train: &mut dyn StepLog, evals: &mut [&mut dyn StepLog], step: u64) {
    train.truncate_from(step);
    for e in evals {
        e.truncate_from(step);
    }
}

pub fn before_eval(evals: &mut [&mut dyn StepLog], step: u64) {
    for e in evals {
        e.truncate_from(step);
    }
}

/// A run's history as plain lists of records, under the resume rule.
#[derive(Clone, Debug)]
pub struct History<T, E> {
    pub train: Vec<T>,
    pub eval: Vec<E>,
}

impl<T, E> Default for History<T, E> {
    fn default() -> Self {
        History {
            train: Vec::new(),
            eval: Vec::new(),
        }
    }
}

impl<T: Stepped, E: Stepped> History<T, E> {
    pub fn push_train(&mut self, t: T) {
        before_train(&mut self.train, &mut [&mut self.eval], t.step());
        self.train.push(t);
    }

    pub fn push_eval(&mut self, e: E) {
        before_eval(&mut [&mut self.eval], e.step());
        self.eval.push(e);
    }
}

/// Appends one JSON line and flushes it; a crash loses at most this partial line.
pub fn append<T: Serialize>(path: &Path, record: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)
}

/// Reads complete lines from `offset` on, returning the parsed records and the new offset.
/// A trailing partial line (a writer mid-append, or a crash) is left for the next read;
/// unparsable complete lines are skipped and counted.
pub fn read_from<T: for<'de> Deserialize<'de>>(
    path: &Path,
    offset: u64,
) -> std::io::Result<(Vec<T>, u64, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < offset {
        // The file was replaced or truncated: start over.
        return read_from(path, 0);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity((len - offset) as usize);
    f.read_to_end(&mut buf)?;
    let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let (mut out, mut bad) = (Vec::new(), 0);
    for line in buf[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(r) => out.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((out, offset + end as u64, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_survive_a_round_trip() {
        let m = Metric::Eval {
            step: 3,
            time: 1.5,
            loss: Num(f64::NAN),
            accuracy: Some(Num(f64::INFINITY)),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"eval","step":3,"time":1.5,"loss":"NaN","accuracy":"inf"}"#
        );
        let back: Metric = serde_json::from_str(&json).unwrap();
        let Metric::Eval { loss, accuracy, .. } = back else {
            panic!()
        };
        assert!(loss.0.is_nan());
        assert_eq!(accuracy.unwrap().0, f64::INFINITY);
    }

    #[test]
    fn a_re_logged_step_replaces_what_came_after_it() {
        let train = |step| Metric::Eval {
            step,
            time: 0.0,
            loss: Num(step as f64),
            accuracy: None,
        };
        let mut h: History<Metric, Metric> = History::default();
        for s in [1, 2, 3] {
            h.push_train(train(s));
        }
        h.push_eval(train(3));
        h.push_train(train(2)); // resumed from step 1
        let steps: Vec<u64> = h.train.iter().map(Metric::step).collect();
        assert_eq!(steps, [1, 2]);
        assert!(
            h.eval.is_empty(),
            "the evaluation at step 3 belonged to the abandoned branch"
        );
    }

    #[test]
    fn reading_stops_at_a_partial_line_and_resumes_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let e = |step| Event {
            time: 0.0,
            step,
            event: "x".into(),
            message: String::new(),
        };
        append(&p, &e(1)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"time\":0,")
            .unwrap();
        let (r, off, bad) = read_from::<Event>(&p, 0).unwrap();
        assert_eq!((r.len(), bad), (1, 0));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"\"step\":2,\"event\":\"y\",\"message\":\"\"}\nnot json\n")
            .unwrap();
        let (r, _, bad) = read_from::<Event>(&p, off).unwrap();
        assert_eq!(r[0].step, 2);
        assert_eq!(bad, 1);
    }
}
