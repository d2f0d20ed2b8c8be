//! `descent data inspect`, `descent ckpt inspect` and `descent ckpt diff`: the Datasets and
//! Checkpoints panes as text.

use crate::present;
use crate::sources::{self, RepoKind, default_hub_cache};
use clap::{Args, Subcommand};
use descent_io::checkpoint::{self, Checkpoint, human_count};
use descent_io::data::{Summary, summarize};
use descent_io::diff::{Change, diff};
use descent_io::stats::tensor_stats;
use descent_io::tree;
use descent_panes::human_bytes;
use descent_panes::truncate_right;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Schema, statistics, class histogram and first rows of a dataset
    Inspect(DataInspectArgs),
}

#[derive(Args, Debug)]
pub struct DataInspectArgs {
    /// builtin:NAME | hub:ORG/NAME[/FILE] | a file or image folder
    pub source: String,
    /// The label column (default: label, class, target, y …)
    #[arg(long)]
    pub target: Option<String>,
    /// Rows to print
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
    /// First row to print
    #[arg(long, default_value_t = 0)]
    pub start: u64,
}

#[derive(Subcommand, Debug)]
pub enum CkptCommand {
    /// Format summary, tensor tree with parameter counts, and tensor statistics on request
    Inspect(CkptInspectArgs),
    /// Per-tensor relative L2 change from A to B, added/removed tensors, shape mismatches
    Diff {
        /// path | hub:ORG/NAME
        a: String,
        /// path | hub:ORG/NAME
        b: String,
    },
}

#[derive(Args, Debug)]
pub struct CkptInspectArgs {
    /// A .safetensors/.gguf file, a sharded index, a model or pipeline folder, a run
    /// checkpoint folder, or hub:ORG/NAME
    pub source: String,
    /// Print statistics and a histogram of this tensor (repeatable)
    #[arg(long)]
    pub tensor: Vec<String>,
    /// List every tensor instead of the module tree
    #[arg(long)]
    pub flat: bool,
}

pub fn data(c: DataCommand) -> anyhow::Result<ExitCode> {
    let DataCommand::Inspect(a) = c;
    let mut ds = sources::open_dataset(&a.source, default_hub_cache().as_deref())?;
    let s = summarize(&mut ds, a.target.as_deref(), 8)?;
    let rows = ds.page(a.start, a.rows)?;
    print_summary(&a.source, &s);
    if !rows.is_empty() {
        println!("\nrows {}–{}:", a.start, a.start + rows.len() as u64 - 1);
        let names: Vec<&str> = ds.columns().iter().map(|c| c.name.as_str()).collect();
        println!("  {}", names.join("\t"));
        for r in rows {
            let cells: Vec<String> = r.iter().map(|c| c.text()).collect();
            println!("  {}", cells.join("\t"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(source: &str, s: &Summary) {
    println!("{source}: {} dataset", s.format);
    println!("rows: {}", s.rows);
    if matches!(s.rows, descent_io::data::RowCount::AtLeast(_)) || s.scanned < rows_exact(s) {
        println!("statistics cover the first {} rows", s.scanned);
    }
    println!(
        "\n{:<24} {:<12} {:>7} {:>12} {:>12} {:>12} {:>12} {:>9}",
        "column", "type", "nulls", "min", "max", "mean", "std", "distinct"
    );
    for c in &s.columns {
        let [name, dtype, nulls, min, max, mean, std, distinct] =
            present::column_cells(c, |v| format!("{v:.4}"));
        println!(
            "{:<24} {:<12} {:>7} {:>12} {:>12} {:>12} {:>12} {:>9}",
            truncate_right(&name, 24),
            truncate_right(&dtype, 12),
            nulls,
            min,
            max,
            mean,
            std,
            distinct
        );
    }
    if let Some(label) = &s.label {
        let more = if s.classes_capped { "≥" } else { "" };
        println!("\nclasses in {label:?} ({more}{}):", s.classes.len());
        let top = s.classes.first().map_or(1, |c| c.1).max(1);
        for (name, n) in s.classes.iter().take(20) {
            let bar = bar(*n, top);
            println!("  {:<16} {:>8} {bar}", truncate_right(name, 16), n);
        }
        if s.classes.len() > 20 {
            println!("  … {more}{} more classes", s.classes.len() - 20);
        }
    }
    if let Some(first) = s.images.first() {
        println!(
            "\nimage samples: {} decoded ({}×{} the first); the TUI draws them",
            s.images.len(),
            first.width,
            first.height
        );
    }
    for n in &s.notes {
        println!("note: {n}");
    }
}

fn rows_exact(s: &Summary) -> u64 {
    match s.rows {
        descent_io::data::RowCount::Exact(n) | descent_io::data::RowCount::AtLeast(n) => n,
    }
}

/// A bar of up to 40 blocks for `n` out of `top`.
fn bar(n: u64, top: u64) -> String {
    "█".repeat(((n as f64 / top.max(1) as f64) * 40.0).ceil() as usize)
}

pub fn open_checkpoint(spec: &str) -> anyhow::Result<Checkpoint> {
    let path = sources::resolve(spec, RepoKind::Model, default_hub_cache().as_deref())?;
    Ok(checkpoint::open(&path)?)
}

pub fn ckpt(c: CkptCommand) -> anyhow::Result<ExitCode> {
    match c {
        CkptCommand::Inspect(a) => inspect(a),
        CkptCommand::Diff { a, b } => ckpt_diff(&a, &b),
    }
}

fn inspect(a: CkptInspectArgs) -> anyhow::Result<ExitCode> {
    let ck = open_checkpoint(&a.source)?;
    println!("{}: {}", ck.path.display(), ck.format);
    for (k, v) in crate::present::checkpoint_summary(&ck) {
        println!("  {k:<20} {v}");
    }
    if !ck.metadata.is_empty() {
        println!("metadata ({}):", ck.metadata.len());
        for (k, v) in ck.metadata.iter().take(40) {
            println!("  {:<40} {}", truncate_right(k, 40), truncate_right(v, 100));
        }
        if ck.metadata.len() > 40 {
            println!("  … {} more", ck.metadata.len() - 40);
        }
    }
    println!("tensors:");
    if a.flat {
        for t in &ck.tensors {
            println!(
                "  {:<56} {:<8} {:<20} {}",
                t.name,
                t.dtype.name(),
                t.shape_text(),
                human_count(t.numel())
            );
        }
    } else {
        let nodes = tree::build(&ck.tensors);
        for (path, n) in tree::visible(&nodes, &|p| p.len() < 3) {
            let indent = "  ".repeat(path.len());
            let what = match n.tensor {
                Some(i) => format!(
                    "{} {}",
                    ck.tensors[i].dtype.name(),
                    ck.tensors[i].shape_text()
                ),
                None => format!("{} tensors", n.tensors()),
            };
            let name = format!("{indent}{}", n.name);
            println!(
                "{:<48} {:<28} {:>9} {:>10}",
                name,
                what,
                human_count(n.params),
                human_bytes(n.bytes)
            );
        }
    }
    for name in &a.tensor {
        let t = ck
            .tensor(name)
            .ok_or_else(|| anyhow::anyhow!("{}: no tensor named {name:?}", ck.path.display()))?;
        let s = tensor_stats(t)?;
        println!(
            "\n{name}: {} {} ({} elements)",
            t.dtype.name(),
            t.shape_text(),
            s.count
        );
        for (k, v) in present::tensor_lines(t, &s).iter().skip(2) {
            println!("  {k:<10} {v}");
        }
        let top = *s.histogram.iter().max().unwrap_or(&1).max(&1);
        let w = (s.max - s.min) / s.histogram.len() as f64;
        for (i, c) in s.histogram.iter().enumerate() {
            let bar = bar(*c, top);
            println!("  {:>12.5} {:>10} {bar}", s.min + w * i as f64, c);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ckpt_diff(a: &str, b: &str) -> anyhow::Result<ExitCode> {
    let ca = open_checkpoint(a)?;
    let cb = open_checkpoint(b)?;
    let changes = diff(&ca, &cb)?;
    println!(
        "A: {} ({})\nB: {} ({})",
        ca.path.display(),
        ca.format,
        cb.path.display(),
        cb.format
    );
    println!("{:<56} {:>14} {:>12}", "tensor", "‖B−A‖/‖A‖", "‖A‖");
    let (mut changed, mut same, mut other) = (0, 0, 0);
    for c in &changes {
        match c {
            Change::Changed {
                name,
                relative,
                norm_a,
            } => {
                if *relative > 0.0 {
                    changed += 1
                } else {
                    same += 1
                }
                println!("{:<56} {:>14.6e} {:>12.4}", name, relative, norm_a);
            }
            Change::ShapeMismatch { name, a, b } => {
                other += 1;
                println!("{name:<56} shape {a} → {b}");
            }
            Change::NotComparable { name, why } => {
                other += 1;
                println!("{name:<56} not compared: {why}");
            }
            Change::Added(n) => {
                other += 1;
                println!("{n:<56} added in B");
            }
            Change::Removed(n) => {
                other += 1;
                println!("{n:<56} removed in B");
            }
        }
    }
    println!("{changed} changed, {same} unchanged, {other} added/removed/reshaped/not compared");
    Ok(ExitCode::SUCCESS)
}
