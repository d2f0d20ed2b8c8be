//! CSV, TSV and JSON Lines, paged: a sparse index of byte positions (one per [`STRIDE`] rows)
//! is built as rows are read, so any page is a seek plus at most `STRIDE` rows of reading.

use super::{Cell, Column, RowCount, Table, cell, infer};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const STRIDE: u64 = 1024;
/// JSON Lines longer than this are refused.
const MAX_LINE: u64 = 64 << 20;
/// Rows read at open to infer column types.
const INFER_ROWS: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Delimited(u8),
    JsonLines,
}

pub struct TextTable {
    pub path: PathBuf,
    pub columns: Vec<Column>,
    kind: Kind,
    /// Byte offset of rows 0, STRIDE, 2·STRIDE, … as far as read.
    marks: Vec<(u64, u64)>,
    /// Rows known to exist, and whether that is all of them.
    seen: u64,
    complete: bool,
}

impl TextTable {
    pub fn open(path: &Path, kind: Kind) -> Result<TextTable> {
        let mut t = TextTable {
            path: path.into(),
            columns: Vec::new(),
            kind,
            marks: Vec::new(),
            seen: 0,
            complete: false,
        };
        let (names, data_start) = match kind {
            Kind::Delimited(_) => {
                let mut src = Source::new(kind, t.file()?, 1);
                let header = src
                    .next(path)?
                    .map(|(_, h)| h)
                    .filter(|h| h.iter().any(|h| !h.trim().is_empty()))
                    .ok_or_else(|| Error::new(path, "line 1", "no header row"))?;
                (
                    header.into_iter().map(|h| h.trim().to_string()).collect(),
                    src.consumed(),
                )
            }
            Kind::JsonLines => (Vec::new(), 0),
        };
        t.marks
            .push((data_start, 1 + matches!(kind, Kind::Delimited(_)) as u64));
        t.columns = names
            .into_iter()
            .map(|name| Column {
                name,
                dtype: "text".into(),
            })
            .collect();
        // Read a first stretch of rows as text to name JSON keys and infer types.
        let mut raw: Vec<Vec<(String, Option<String>)>> = Vec::new();
        t.scan(0, INFER_ROWS, &mut |r| {
            raw.push(r);
            true
        })?;
        if kind == Kind::JsonLines {
            for row in &raw {
                for (k, _) in row {
                    if !t.columns.iter().any(|c| &c.name == k) {
                        t.columns.push(Column {
                            name: k.clone(),
                            dtype: "text".into(),
                        });
                    }
                }
            }
            if t.columns.is_empty() {
                return Err(Error::new(path, "line 1", "no JSON objects with keys"));
            }
        }
        for c in &mut t.columns {
            let values = raw.iter().map(|r| {
                r.iter()
                    .find(|(k, _)| *k == c.name)
                    .and_then(|(_, v)| v.clone())
            });
            c.dtype = infer(values).into();
        }
        Ok(t)
    }

    fn file(&self) -> Result<std::fs::File> {
        std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))
    }

    /// Raw rows as (column, text) pairs from row `start`.
    fn scan(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<(String, Option<String>)>) -> bool,
    ) -> Result<()> {
        let mark = ((start / STRIDE) as usize).min(self.marks.len() - 1);
        let mut row = mark as u64 * STRIDE;
        let (byte, line) = self.marks[mark];
        let mut file = self.file()?;
        file.seek(SeekFrom::Start(byte))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut src = Source::new(self.kind, file, line);
        let mut taken = 0;
        while taken < limit {
            if row.is_multiple_of(STRIDE) && (row / STRIDE) as usize == self.marks.len() {
                self.marks.push((byte + src.consumed(), src.line()));
            }
            let Some((line_no, fields)) = src.next(&self.path)? else {
                self.complete = true;
                break;
            };
            let place = format!("line {line_no}");
            let fields = match self.kind {
                Kind::Delimited(_) => {
                    if fields.len() != self.columns.len() {
                        return Err(Error::new(
                            &self.path,
                            place,
                            format!(
                                "the row has {} fields but the header has {}",
                                fields.len(),
                                self.columns.len()
                            ),
                        ));
                    }
                    let names = self.columns.iter().map(|c| c.name.clone());
                    names.zip(fields).map(|(c, v)| (c, Some(v))).collect()
                }
                Kind::JsonLines => json_fields(&self.path, &place, &fields[0])?,
            };
            row += 1;
            self.seen = self.seen.max(row);
            if row > start {
                taken += 1;
                if !f(fields) {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Table for TextTable {
    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn columns(&self) -> &[Column] {
        &self.columns
    }

    fn format(&self) -> &'static str {
        match self.kind {
            Kind::Delimited(b'\t') => "TSV",
            Kind::Delimited(_) => "CSV",
            Kind::JsonLines => "JSON Lines",
        }
    }

    fn rows(&self) -> RowCount {
        if self.complete {
            RowCount::Exact(self.seen)
        } else {
            RowCount::AtLeast(self.seen)
        }
    }

    fn for_each_row(
        &mut self,
        start: u64,
        limit: u64,
        f: &mut dyn FnMut(Vec<Cell>) -> bool,
    ) -> Result<()> {
        let columns = self.columns.clone();
        self.scan(start, limit, &mut |raw| {
            let row = columns
                .iter()
                .map(|c| match raw.iter().find(|(k, _)| *k == c.name) {
                    Some((_, Some(v))) => cell(v, &c.dtype),
                    _ => Cell::Null,
                })
                .collect();
            f(row)
        })
    }
}

/// Records from a position in the file: CSV records (quoted newlines included) or lines.
enum Source {
    Csv(csv::Reader<std::fs::File>, csv::ByteRecord, u64),
    Lines(BufReader<std::fs::File>, Vec<u8>, u64, u64),
}

impl Source {
    fn new(kind: Kind, file: std::fs::File, line: u64) -> Source {
        match kind {
            Kind::Delimited(d) => {
                let r = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .delimiter(d)
                    .from_reader(file);
                Source::Csv(r, csv::ByteRecord::new(), line)
            }
            Kind::JsonLines => {
                Source::Lines(BufReader::with_capacity(1 << 16, file), Vec::new(), line, 0)
            }
        }
    }

    /// Bytes consumed since the start position.
    fn consumed(&self) -> u64 {
        match self {
            Source::Csv(r, ..) => r.position().byte(),
            Source::Lines(_, _, _, n) => *n,
        }
    }

    /// Line number (1-based) of the next record.
    fn line(&self) -> u64 {
        match self {
            Source::Csv(r, _, first) => first + r.position().line() - 1,
            Source::Lines(_, _, l, _) => *l,
        }
    }

    /// The next non-blank record: its line number and fields (a JSON line is one field).
    fn next(&mut self, path: &Path) -> Result<Option<(u64, Vec<String>)>> {
        loop {
            let line_no = self.line();
            match self {
                Source::Csv(r, rec, _) => {
                    let more = r
                        .read_byte_record(rec)
                        .map_err(|e| Error::new(path, format!("line {line_no}"), e.to_string()))?;
                    if !more {
                        return Ok(None);
                    }
                    if rec.len() == 1 && rec[0].is_empty() {
                        continue;
                    }
                    let fields = rec
                        .iter()
                        .map(|f| utf8(path, line_no, f).map(str::to_string))
                        .collect::<Result<_>>()?;
                    return Ok(Some((line_no, fields)));
                }
                Source::Lines(r, buf, line, consumed) => {
                    buf.clear();
                    // A line longer than the cap is refused rather than read whole.
                    let n = r
                        .by_ref()
                        .take(MAX_LINE)
                        .read_until(b'\n', buf)
                        .map_err(|e| Error::io(path, e))?;
                    if n as u64 == MAX_LINE && buf.last() != Some(&b'\n') {
                        return Err(Error::new(
                            path,
                            format!("line {line_no}"),
                            format!("longer than {MAX_LINE} bytes"),
                        ));
                    }
                    if n == 0 {
                        return Ok(None);
                    }
                    *consumed += n as u64;
                    *line += 1;
                    let t = trim_newline(buf);
                    if t.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some((line_no, vec![utf8(path, line_no, t)?.to_string()])));
                }
            }
        }
    }
}

fn utf8<'a>(path: &Path, line: u64, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            path,
            format!("line {line}"),
            format!("invalid UTF-8 at byte {} of a field", e.valid_up_to()),
        )
    })
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn json_fields(path: &Path, place: &str, text: &str) -> Result<Vec<(String, Option<String>)>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::new(path, place, format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| Error::new(path, place, "not a JSON object"))?;
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            (k.clone(), text)
        })
        .collect())
}
