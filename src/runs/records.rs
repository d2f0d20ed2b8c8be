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
        // A visitor rather than an untagged enum: an untagged enum buffers every value before
        // trying its variants, and a training record holds a dozen or more of these.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, or \"NaN\", \"inf\" or \"-inf\"")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_str<E>(self, s: &str) -> Result<Num, E> {
                Ok(Num(match s {
                    "inf" | "Infinity" => f64::INFINITY,
                    "-inf" | "-Infinity" => f64::NEG_INFINITY,
                    _ => f64::NAN,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamRecord {
    pub grad_l2: Num,
    pub update_ratio: Num,
}

/// One line of `metrics.jsonl`. (Read through [`FlatMetric`]: serde reads an internally
/// tagged enum by first copying each record into a generic tree to find its tag, which made
/// opening a million-step run several times slower.)
#[derive(Clone, Debug, PartialEq, Serialize)]
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
        /// Language models: tokens read per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_per_s: Option<Num>,
        params: BTreeMap<String, ParamRecord>,
        /// The kind's further scalars under their names (GRPO's `reward`, `kl`, …).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        extra: BTreeMap<String, Num>,
    },
    Eval {
        step: u64,
        time: f64,
        /// Absent for kinds without a held-out loss (GRPO).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss: Option<Num>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accuracy: Option<Num>,
    },
}

/// Every field of either kind of record, read in one pass.
#[derive(Deserialize)]
struct FlatMetric {
    kind: String,
    step: u64,
    time: f64,
    loss: Option<Num>,
    grad_l2: Option<Num>,
    grad_l1: Option<Num>,
    lr: Option<Num>,
    clip_scale: Option<Num>,
    examples_per_s: Option<Num>,
    tokens_per_s: Option<Num>,
    params: Option<BTreeMap<String, ParamRecord>>,
    extra: Option<BTreeMap<String, Num>>,
    accuracy: Option<Num>,
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        use serde::de::Error;
        let f = FlatMetric::deserialize(d)?;
        let need = |v: Option<Num>, name: &str| {
            v.ok_or_else(|| D::Error::custom(format!("a train record needs {name}")))
        };
        match f.kind.as_str() {
            "train" => Ok(Metric::Train {
                step: f.step,
                time: f.time,
                loss: need(f.loss, "loss")?,
                grad_l2: need(f.grad_l2, "grad_l2")?,
                grad_l1: need(f.grad_l1, "grad_l1")?,
                lr: need(f.lr, "lr")?,
                clip_scale: need(f.clip_scale, "clip_scale")?,
                examples_per_s: need(f.examples_per_s, "examples_per_s")?,
                tokens_per_s: f.tokens_per_s,
                params: f
                    .params
                    .ok_or_else(|| D::Error::custom("a train record needs params"))?,
                extra: f.extra.unwrap_or_default(),
            }),
            "eval" => Ok(Metric::Eval {
                step: f.step,
                time: f.time,
                loss: f.loss,
                accuracy: f.accuracy,
            }),
            other => Err(D::Error::custom(format!(
                "unknown record kind {other:?}; expected train or eval"
            ))),
        }
    }
}

impl Metric {
    pub fn step(&self) -> u64 {
        match self {
            Metric::Train { step, .. } | Metric::Eval { step, .. } => *step,
        }
    }
}

/// One line of a run's own log (`rollouts.jsonl`: a GRPO step's groups; `opposing.jsonl`: a
/// probe): `{"step": N, KEY: VALUE}`. The step comes first, so a reader can index the file by
/// step from each line's first bytes.
#[derive(Serialize)]
pub struct StepLine<'a> {
    pub step: u64,
    #[serde(flatten)]
    pub body: BTreeMap<&'a str, &'a serde_json::Value>,
}

/// The step of a `rollouts.jsonl` line, read from its first bytes.
pub fn rollouts_step(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"step\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
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
    let (records, offset, bad, _) = read_chunk(path, offset, u64::MAX)?;
    Ok((records, offset, bad))
}

/// [`read_from`], reading at most `max` bytes (whole lines), so a reader can take a long file
/// a piece at a time; the last value says whether more complete lines may follow.
pub fn read_chunk<T: for<'de> Deserialize<'de>>(
    path: &Path,
    offset: u64,
    max: u64,
) -> std::io::Result<(Vec<T>, u64, usize, bool)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < offset {
        // The file was replaced or truncated: start over.
        return read_chunk(path, 0, max);
    }
    f.seek(SeekFrom::Start(offset))?;
    let want = (len - offset).min(max);
    let mut buf = Vec::with_capacity(want as usize);
    f.take(want).read_to_end(&mut buf)?;
    let capped = want < len - offset;
    let (mut out, mut bad) = (Vec::new(), 0);
    let end = match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        // A whole chunk without a line end is no record: skip it as one bad line.
        None if capped => {
            return Ok((out, offset + buf.len() as u64, 1, true));
        }
        None => 0,
    };
    for line in buf[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(r) => out.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((out, offset + end as u64, bad, capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_numbers_survive_a_round_trip() {
        let m = Metric::Eval {
            step: 3,
            time: 1.5,
            loss: Some(Num(f64::NAN)),
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
        assert!(loss.unwrap().0.is_nan());
        assert_eq!(accuracy.unwrap().0, f64::INFINITY);
    }

    #[test]
    fn a_re_logged_step_replaces_what_came_after_it() {
        let train = |step| Metric::Eval {
            step,
            time: 0.0,
            loss: Some(Num(step as f64)),
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
    fn a_long_file_is_read_a_chunk_of_whole_lines_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.jsonl");
        for step in 0..100 {
            let e = Event {
                time: 0.0,
                step,
                event: "x".into(),
                message: String::new(),
            };
            append(&p, &e).unwrap();
        }
        let (mut steps, mut offset, mut more) = (Vec::new(), 0, true);
        while more {
            let (r, off, bad, m) = read_chunk::<Event>(&p, offset, 500).unwrap();
            assert_eq!(bad, 0);
            assert!(off - offset <= 500);
            steps.extend(r.iter().map(|e| e.step));
            (offset, more) = (off, m);
        }
        assert_eq!(steps, (0..100).collect::<Vec<_>>());
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
