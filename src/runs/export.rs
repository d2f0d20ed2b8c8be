//! `descent export`: a run's metrics as CSV, or as a TensorBoard event file.
//!
//! Steps a resumed run logged twice (after its checkpoint, before and after the crash) are
//! exported once, the later record winning.

use super::METRICS;
use super::records::{History, Metric, ParamRecord, read_from};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The run's metrics with re-logged steps resolved: (train, eval) records in step order.
pub fn load(run_dir: &Path) -> Result<(Vec<Metric>, Vec<Metric>), String> {
    let path = run_dir.join(METRICS);
    let (records, _, bad) =
        read_from::<Metric>(&path, 0).map_err(|e| format!("{}: {e}", path.display()))?;
    if bad > 0 {
        tracing::warn!("{}: skipped {bad} unreadable lines", path.display());
    }
    let mut history: History<Metric, Metric> = History::default();
    for r in records {
        match r {
            Metric::Train { .. } => history.push_train(r),
            Metric::Eval { .. } => history.push_eval(r),
        }
    }
    Ok((history.train, history.eval))
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        v.to_string()
    }
}

/// The columns every run's CSV starts with, in order.
const BASE: [&str; 10] = [
    "kind",
    "step",
    "time",
    "loss",
    "grad_l2",
    "grad_l1",
    "lr",
    "clip_scale",
    "examples_per_s",
    "accuracy",
];

/// One run's metrics, read: its columns, and its records in step order, each made a row of
/// cells as it is written (a long run's cells are never all in memory).
struct RunTable {
    header: Vec<String>,
    records: Vec<Metric>,
    tokens: bool,
    extra: BTreeSet<String>,
    params: BTreeSet<String>,
    /// A sweep member's cells, the same on every row.
    constant: Vec<String>,
}

/// One row per record: `kind,step,time,loss,grad_l2,grad_l1,lr,clip_scale,examples_per_s,
/// accuracy` (and `tokens_per_s` for a language model), then the kind's further scalars
/// under their names (GRPO's `reward`, `kl`, …), then `grad_l2/NAME` and `update_ratio/NAME`
/// for every parameter tensor, then a sweep member's `sweep`, `member` and `override.KEY`s.
/// Several runs go into one table led by `experiment,run` columns, over the union of their
/// columns (a cell a run has no value for is empty). Returns the rows written.
pub fn write_csv(run_dirs: &[PathBuf], out: &mut dyn Write) -> Result<usize, String> {
    // Every run's columns first (for the header), then each run again for its rows: one
    // run's records in memory at a time.
    let headers = run_dirs
        .iter()
        .map(|d| Ok(RunTable::read(d)?.header))
        .collect::<Result<Vec<_>, String>>()?;
    let mut header: Vec<String> = headers.concat();
    header.sort_by(|a, b| column_order(a).cmp(&column_order(b)));
    header.dedup();
    let several = run_dirs.len() > 1;
    let mut w = csv::Writer::from_writer(out);
    let err = |e: csv::Error| e.to_string();
    let lead: &[&str] = if several { &["experiment", "run"] } else { &[] };
    w.write_record(
        lead.iter()
            .copied()
            .chain(header.iter().map(String::as_str)),
    )
    .map_err(err)?;
    let mut n = 0;
    for dir in run_dirs {
        let t = RunTable::read(dir)?;
        let name = crate::queue::run_name(dir);
        let (experiment, run) = name.split_once('/').unwrap_or(("", &name));
        let lead = [experiment, run];
        // Where each of the merged columns is in this run's rows.
        let at: Vec<Option<usize>> = header
            .iter()
            .map(|h| t.header.iter().position(|c| c == h))
            .collect();
        for m in &t.records {
            let row = t.row(m);
            let cells = at.iter().map(|i| i.map_or("", |i| row[i].as_str()));
            let lead = lead.iter().copied().filter(|_| several);
            w.write_record(lead.chain(cells)).map_err(err)?;
        }
        n += t.records.len();
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(n)
}

/// Where a column goes in a merged header: the base columns in their order, then
/// `tokens_per_s`, the kind's scalars, per-tensor norms, update ratios and the sweep's keys,
/// each group by name.
fn column_order(c: &str) -> (usize, usize, &str) {
    if let Some(i) = BASE.iter().position(|b| *b == c) {
        return (0, i, "");
    }
    let group = match c {
        "tokens_per_s" => 1,
        "sweep" => 5,
        "member" => 6,
        _ if c.starts_with("grad_l2/") => 3,
        _ if c.starts_with("update_ratio/") => 4,
        _ if c.starts_with("override.") => 7,
        _ => 2,
    };
    (group, 0, c)
}

impl RunTable {
    fn read(run_dir: &Path) -> Result<RunTable, String> {
        let (train, eval) = load(run_dir)?;
        // Every tensor and every further scalar any training record names.
        let (mut params, mut extra) = (BTreeSet::new(), BTreeSet::new());
        for m in &train {
            if let Metric::Train {
                params: p,
                extra: e,
                ..
            } = m
            {
                params.extend(p.keys().cloned());
                extra.extend(e.keys().cloned());
            }
        }
        let mut header: Vec<String> = BASE.map(String::from).to_vec();
        let tokens = train.iter().any(|m| {
            matches!(
                m,
                Metric::Train {
                    tokens_per_s: Some(_),
                    ..
                }
            )
        });
        if tokens {
            header.push("tokens_per_s".into());
        }
        header.extend(extra.iter().cloned());
        header.extend(params.iter().map(|p| format!("grad_l2/{p}")));
        header.extend(params.iter().map(|p| format!("update_ratio/{p}")));
        // A sweep member's keys, the same on every row, so members' exports concatenate.
        let launch = super::launch::Launch::read(run_dir)?.unwrap_or_default();
        let mut constant: Vec<String> = Vec::new();
        if let Some(sweep) = &launch.sweep {
            header.extend(["sweep".to_string(), "member".to_string()]);
            constant.push(sweep.clone());
            constant.push(launch.member.map_or(String::new(), |m| m.to_string()));
        }
        for (key, value) in &launch.overrides {
            header.push(format!("override.{key}"));
            constant.push(match value {
                toml::Value::String(s) => s.clone(),
                v => v.to_string(),
            });
        }
        let mut records: Vec<Metric> = train.into_iter().chain(eval).collect();
        records.sort_by_key(|m| (m.step(), matches!(m, Metric::Eval { .. })));
        Ok(RunTable {
            header,
            records,
            tokens,
            extra,
            params,
            constant,
        })
    }

    /// Record `m`'s cells, in the order of the run's own header.
    fn row(&self, m: &Metric) -> Vec<String> {
        let mut rec: Vec<String> = match m {
            Metric::Train {
                step,
                time,
                loss,
                grad_l2,
                grad_l1,
                lr,
                clip_scale,
                examples_per_s,
                ..
            } => vec![
                "train".into(),
                step.to_string(),
                time.to_string(),
                num(loss.0),
                num(grad_l2.0),
                num(grad_l1.0),
                num(lr.0),
                num(clip_scale.0),
                num(examples_per_s.0),
                String::new(),
            ],
            Metric::Eval {
                step,
                time,
                loss,
                accuracy,
            } => {
                let mut r = vec![
                    "eval".into(),
                    step.to_string(),
                    time.to_string(),
                    loss.map_or(String::new(), |l| num(l.0)),
                ];
                r.extend(std::iter::repeat_n(String::new(), 5));
                r.push(accuracy.map_or(String::new(), |a| num(a.0)));
                r
            }
        };
        if self.tokens {
            rec.push(match m {
                Metric::Train {
                    tokens_per_s: Some(t),
                    ..
                } => num(t.0),
                _ => String::new(),
            });
        }
        for k in &self.extra {
            rec.push(match m {
                Metric::Train { extra: e, .. } => e.get(k).map_or(String::new(), |v| num(v.0)),
                Metric::Eval { .. } => String::new(),
            });
        }
        let fields: [fn(&ParamRecord) -> f64; 2] = [|r| r.grad_l2.0, |r| r.update_ratio.0];
        for field in fields {
            for p in &self.params {
                rec.push(match m {
                    Metric::Train { params: ps, .. } => {
                        ps.get(p).map_or(String::new(), |r| num(field(r)))
                    }
                    Metric::Eval { .. } => String::new(),
                });
            }
        }
        rec.extend(self.constant.iter().cloned());
        rec
    }
}

/// The scalars TensorBoard shows, as (tag, step, wall time, value).
fn scalars(train: &[Metric], eval: &[Metric]) -> Vec<(String, u64, f64, f32)> {
    let mut out = Vec::new();
    for m in train.iter().chain(eval) {
        match m {
            Metric::Train {
                step,
                time,
                loss,
                grad_l2,
                grad_l1,
                lr,
                examples_per_s,
                tokens_per_s,
                params,
                extra,
                ..
            } => {
                for (tag, v) in [
                    ("train/loss", loss),
                    ("train/grad_l2", grad_l2),
                    ("train/grad_l1", grad_l1),
                    ("train/lr", lr),
                    ("train/examples_per_s", examples_per_s),
                ] {
                    out.push((tag.to_string(), *step, *time, v.0 as f32));
                }
                if let Some(v) = tokens_per_s {
                    out.push(("train/tokens_per_s".into(), *step, *time, v.0 as f32));
                }
                for (k, v) in extra {
                    out.push((format!("train/{k}"), *step, *time, v.0 as f32));
                }
                for (name, p) in params {
                    out.push((format!("grad_l2/{name}"), *step, *time, p.grad_l2.0 as f32));
                    out.push((
                        format!("update_ratio/{name}"),
                        *step,
                        *time,
                        p.update_ratio.0 as f32,
                    ));
                }
            }
            Metric::Eval {
                step,
                time,
                loss,
                accuracy,
            } => {
                if let Some(l) = loss {
                    out.push(("eval/loss".into(), *step, *time, l.0 as f32));
                }
                if let Some(a) = accuracy {
                    out.push(("eval/accuracy".into(), *step, *time, a.0 as f32));
                }
            }
        }
    }
    out
}

/// Writes `events.out.tfevents.<time>.descent` into `out_dir`; returns its path.
pub fn write_tensorboard(run_dir: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let (train, eval) = load(run_dir)?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let start = train.first().map_or(super::now(), |m| match m {
        Metric::Train { time, .. } | Metric::Eval { time, .. } => *time,
    });
    let path = out_dir.join(format!("events.out.tfevents.{}.descent", start as u64));
    let mut buf = Vec::new();
    let mut first = Vec::new();
    tfevent::event(
        &mut first,
        start,
        0,
        tfevent::Payload::FileVersion("brain.Event:2"),
    );
    tfevent::record(&mut buf, &first);
    // A sweep member's keys, as TensorBoard's HParams dashboard reads a run's hyperparameters.
    let launch = super::launch::Launch::read(run_dir)?.unwrap_or_default();
    if !launch.overrides.is_empty() {
        let hparams: Vec<(String, tfevent::HValue)> = launch
            .overrides
            .iter()
            .map(|(key, value)| (key.clone(), tfevent::HValue::of(value)))
            .collect();
        let mut e = Vec::new();
        tfevent::event(&mut e, start, 0, tfevent::Payload::HParams(&hparams, start));
        tfevent::record(&mut buf, &e);
    }
    for (tag, step, time, value) in scalars(&train, &eval) {
        let mut e = Vec::new();
        tfevent::event(
            &mut e,
            time,
            step as i64,
            tfevent::Payload::Scalar(&tag, value),
        );
        tfevent::record(&mut buf, &e);
    }
    crate::atomic::write_atomically(&path, &buf).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The few pieces of TensorBoard's file format we write: TFRecord framing around `Event`
/// protobufs holding scalar `Summary` values.
pub mod tfevent {
    const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

    /// TFRecord's masked CRC32-C.
    pub fn masked_crc(data: &[u8]) -> u32 {
        let c = CRC32C.checksum(data);
        c.rotate_right(15).wrapping_add(0xa282_ead8)
    }

    /// `u64 length, u32 masked crc(length), data, u32 masked crc(data)`.
    pub fn record(out: &mut Vec<u8>, data: &[u8]) {
        let len = (data.len() as u64).to_le_bytes();
        out.extend_from_slice(&len);
        out.extend_from_slice(&masked_crc(&len).to_le_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(&masked_crc(data).to_le_bytes());
    }

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
        varint(out, ((field << 3) | 2) as u64);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    pub enum Payload<'a> {
        FileVersion(&'a str),
        Scalar(&'a str, f32),
        /// The HParams plugin's `SessionStartInfo`: hyperparameters and the start time.
        HParams(&'a [(String, HValue)], f64),
    }

    /// A hyperparameter as `google.protobuf.Value` holds it.
    #[derive(Clone, Debug, PartialEq)]
    pub enum HValue {
        Number(f64),
        Text(String),
        Bool(bool),
    }

    impl HValue {
        /// Numbers and booleans as such; anything else (arrays, tables, dates) as its TOML text.
        pub fn of(v: &toml::Value) -> HValue {
            match v {
                toml::Value::Integer(i) => HValue::Number(*i as f64),
                toml::Value::Float(f) => HValue::Number(*f),
                toml::Value::Boolean(b) => HValue::Bool(*b),
                toml::Value::String(s) => HValue::Text(s.clone()),
                other => HValue::Text(other.to_string()),
            }
        }

        /// `Value { number_value = 2 (double) | string_value = 3 | bool_value = 4 }`.
        fn encode(&self, out: &mut Vec<u8>) {
            match self {
                HValue::Number(v) => {
                    out.push(0x11);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                HValue::Text(t) => bytes_field(out, 3, t.as_bytes()),
                HValue::Bool(b) => {
                    out.push(0x20);
                    out.push(*b as u8);
                }
            }
        }
    }

    /// The tag under which TensorBoard's HParams plugin looks for a run's session start.
    pub const SESSION_START_TAG: &str = "_hparams_/session_start_info";

    /// `HParamsPluginData { version = 1 (0, omitted), session_start_info = 3 }`,
    /// `SessionStartInfo { hparams = 1 (map<string, Value>), start_time_secs = 5 (double) }`.
    fn session_start(hparams: &[(String, HValue)], start: f64) -> Vec<u8> {
        let mut info = Vec::new();
        for (key, value) in hparams {
            let mut entry = Vec::new();
            bytes_field(&mut entry, 1, key.as_bytes());
            let mut v = Vec::new();
            value.encode(&mut v);
            bytes_field(&mut entry, 2, &v);
            bytes_field(&mut info, 1, &entry);
        }
        info.push(0x29);
        info.extend_from_slice(&start.to_le_bytes());
        let mut data = Vec::new();
        bytes_field(&mut data, 3, &info);
        data
    }

    /// `Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 }`,
    /// `Summary { value = 1 }`, `Summary.Value { tag = 1, simple_value = 2 (float) }`.
    pub fn event(out: &mut Vec<u8>, wall_time: f64, step: i64, payload: Payload<'_>) {
        out.push(0x09);
        out.extend_from_slice(&wall_time.to_le_bytes());
        out.push(0x10);
        varint(out, step as u64);
        match payload {
            Payload::FileVersion(v) => bytes_field(out, 3, v.as_bytes()),
            Payload::HParams(hparams, start) => {
                // Summary.Value { tag = 1, metadata = 9 }, SummaryMetadata { plugin_data = 1 },
                // PluginData { plugin_name = 1, content = 2 }; no value, as PyTorch writes it.
                let mut plugin = Vec::new();
                bytes_field(&mut plugin, 1, b"hparams");
                bytes_field(&mut plugin, 2, &session_start(hparams, start));
                let mut metadata = Vec::new();
                bytes_field(&mut metadata, 1, &plugin);
                let mut val = Vec::new();
                bytes_field(&mut val, 1, SESSION_START_TAG.as_bytes());
                bytes_field(&mut val, 9, &metadata);
                let mut summary = Vec::new();
                bytes_field(&mut summary, 1, &val);
                bytes_field(out, 5, &summary);
            }
            Payload::Scalar(tag, value) => {
                let mut val = Vec::new();
                bytes_field(&mut val, 1, tag.as_bytes());
                val.push(0x15);
                val.extend_from_slice(&value.to_le_bytes());
                let mut summary = Vec::new();
                bytes_field(&mut summary, 1, &val);
                bytes_field(out, 5, &summary);
            }
        }
    }

    /// Splits a TFRecord file into its records, checking both CRCs of each.
    pub fn read_records(data: &[u8]) -> Result<Vec<&[u8]>, String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let head = data
                .get(i..i + 12)
                .ok_or(format!("truncated record header at byte {i}"))?;
            let len_bytes = &head[..8];
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
            if masked_crc(len_bytes) != u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"))
            {
                return Err(format!("bad length CRC at byte {i}"));
            }
            let body = data
                .get(i + 12..i + 12 + len)
                .ok_or(format!("truncated record at byte {i}"))?;
            let crc = data
                .get(i + 12 + len..i + 16 + len)
                .ok_or(format!("missing CRC at byte {i}"))?;
            if masked_crc(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
                return Err(format!("bad data CRC at byte {i}"));
            }
            out.push(body);
            i += 16 + len;
        }
        Ok(out)
    }
}
