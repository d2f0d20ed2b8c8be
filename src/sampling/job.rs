//! One sampling job: open the checkpoint, sample every requested guidance mode from the same
//! seeds, write the files and keep `report.json` current.

use super::render;
use super::{JobState, ModeReport, Params, Report};
use crate::runs::{self, CHECKPOINTS, CONFIG, STATUS, now};
use crate::workspace::Workspace;
use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use descent_models::device;
use descent_models::diffusion::export::{self, MODEL_DIR, Opened};
use descent_models::diffusion::sample::{self, Affine, Estimate, Guidance, Model, Output, Request};
use descent_models::diffusion::schedule::{SamplerKind, Scheduler};
use descent_models::diffusion::scheduler_config::{self, ReadConfig};
use descent_models::diffusion::sd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Calibration samples for LinearAG's affine estimate: fitted on the first, the rest held
/// back to measure it.
const CALIBRATION: (usize, usize) = (6, 2);

/// The folder to open for `spec`: a run (its exported `model/`, else its newest
/// checkpoint), a checkpoint or pipeline folder, a run id, or `hub:ORG/NAME`.
pub fn resolve_checkpoint(ws: &Workspace, spec: &str) -> anyhow::Result<PathBuf> {
    let path = if spec.starts_with("hub:") {
        let cache = ws.settings.hub_cache_path(&ws.root);
        crate::sources::resolve(spec, crate::sources::RepoKind::Model, cache.as_deref())?
    } else {
        let p = PathBuf::from(spec);
        if p.exists() {
            p
        } else {
            runs::find_run_or_newest(&ws.settings.runs_path(&ws.root), spec)
                .map_err(anyhow::Error::msg)?
        }
    };
    if path.join(STATUS).is_file() || path.join(CONFIG).is_file() {
        let model = path.join(MODEL_DIR);
        if model.join("model_index.json").is_file() {
            return Ok(model);
        }
        return match runs::checkpoint::list(&path).pop() {
            Some((_, dir)) => Ok(dir),
            None => bail!(
                "{}: the run has no checkpoint yet (nothing in {CHECKPOINTS}/, no {MODEL_DIR}/)",
                path.display()
            ),
        };
    }
    Ok(path)
}

/// The starting noise from a safetensors file: one tensor (or the one named `noise`) of
/// shape `[n, ...sample]` (or `[...sample]` for one sample).
fn read_noise(path: &Path, n: usize, shape: &[usize]) -> anyhow::Result<Vec<f32>> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .with_context(|| format!("--noise {}", path.display()))?;
    let t = match tensors.get("noise") {
        Some(t) => t.clone(),
        None if tensors.len() == 1 => tensors.into_values().next().expect("one"),
        None => bail!(
            "--noise {}: {} tensors and none named \"noise\"; which is the noise?",
            path.display(),
            tensors.len()
        ),
    };
    let want: Vec<usize> = [n].into_iter().chain(shape.iter().copied()).collect();
    let dims = t.dims().to_vec();
    if dims != want && !(n == 1 && dims == shape) {
        bail!(
            "--noise {}: shape {dims:?}, but {n} samples of shape {shape:?} need {want:?}",
            path.display()
        );
    }
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
}

/// What the judge says: the class its classifier gives each sample (data units).
struct Judge {
    trainer: descent_models::train::Trainer,
    stats: Vec<(f64, f64)>,
    /// Its accuracy on its own validation split, read through [`Judge::classify`] from the
    /// raw data, so the report says how far the judge itself can be trusted.
    val_accuracy: f64,
}

impl Judge {
    fn open(ws: &Workspace, run: &str) -> anyhow::Result<Judge> {
        let dir = runs::find_run_or_newest(&ws.settings.runs_path(&ws.root), run)
            .map_err(|e| anyhow::anyhow!("--judge: {e}"))?;
        let cfg = dir.join(CONFIG);
        let exp = crate::config::Experiment::parse(
            &cfg,
            &crate::config::read_text(&cfg).map_err(anyhow::Error::msg)?,
        )
        .map_err(|e| anyhow::anyhow!("{}", e[0]))?;
        if exp.kind != crate::config::Kind::Supervised {
            bail!(
                "--judge {run}: a judge is a supervised classifier run, not {}",
                exp.kind
            );
        }
        let data = crate::runs::exec::load_data(ws, &exp)?;
        let spec = crate::runs::exec::train_spec(ws, &exp)?;
        let split = descent_models::data::Split::new(data.len(), spec.val_fraction, spec.seed);
        let stats = data.standardization(&split.train);
        let f = data.features();
        let raw_val: Vec<f32> = split
            .val
            .iter()
            .flat_map(|&r| data.inputs[r * f..(r + 1) * f].iter().copied())
            .collect();
        let val_labels: Vec<u32> = match &data.targets {
            descent_models::data::Targets::Classes { labels, .. } => {
                split.val.iter().map(|&r| labels[r]).collect()
            }
            _ => bail!("--judge {run}: the run is a regression, not a classifier"),
        };
        let shape = data.input_shape.clone();
        let mut trainer = descent_models::train::Trainer::new(data, spec, Device::Cpu)?;
        let (step, ckpt) = runs::checkpoint::list(&dir)
            .pop()
            .with_context(|| format!("--judge {run}: the run has no checkpoint"))?;
        trainer
            .load(&ckpt, step)
            .with_context(|| format!("--judge {}", ckpt.display()))?;
        let mut judge = Judge {
            trainer,
            stats,
            val_accuracy: 0.0,
        };
        let got = judge.classify(&raw_val, &shape)?;
        let hits = got.iter().zip(&val_labels).filter(|(a, b)| a == b).count();
        judge.val_accuracy = hits as f64 / val_labels.len().max(1) as f64;
        Ok(judge)
    }

    fn classify(&self, samples: &[f32], shape: &[usize]) -> anyhow::Result<Vec<u32>> {
        use candle_core::Module;
        let f: usize = shape.iter().product();
        if self.trainer.dataset().features() != f {
            bail!(
                "--judge: the classifier takes {} features, the samples have {f}",
                self.trainer.dataset().features()
            );
        }
        let x: Vec<f32> = samples
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let (m, s) = self.stats[k % f];
                ((v as f64 - m) / s) as f32
            })
            .collect();
        let dims: Vec<usize> = [samples.len() / f]
            .into_iter()
            .chain(self.trainer.dataset().input_shape.iter().copied())
            .collect();
        let logits = self
            .trainer
            .net
            .forward(&Tensor::from_vec(x, dims, &Device::Cpu)?)?;
        Ok(logits.argmax(1)?.to_vec1::<u32>()?)
    }
}

struct Job<'a> {
    dir: &'a Path,
    report: Report,
    last_write: Instant,
}

impl Job<'_> {
    fn save(&mut self) {
        self.last_write = Instant::now();
        if let Err(e) = self.report.write(self.dir) {
            eprintln!(
                "cannot write {}: {e}",
                self.dir.join(super::REPORT).display()
            );
        }
    }
}

/// Runs the job into `dir` (created), keeping `report.json` current; on failure the report
/// says why and the error is returned too.
pub fn execute(ws: &Workspace, params: Params, dir: &Path, quiet: bool) -> anyhow::Result<Report> {
    let mut job = Job {
        dir,
        report: Report {
            state: JobState::Running,
            message: None,
            pid: std::process::id(),
            process: runs::process::own_stamp(),
            started: now(),
            finished: None,
            params: params.clone(),
            model_dir: None,
            sampler: None,
            sample_shape: Vec::new(),
            image_shape: Vec::new(),
            dtype: None,
            notes: Vec::new(),
            class_names: Vec::new(),
            seeds: Vec::new(),
            classes: Vec::new(),
            ignored_keys: Vec::new(),
            judge_val_accuracy: None,
            done_steps: 0,
            total_steps: 0,
            modes: Vec::new(),
        },
        last_write: Instant::now(),
    };
    job.save();
    match run(ws, &params, &mut job, quiet) {
        Ok(()) => {
            job.report.state = JobState::Finished;
            job.report.finished = Some(now());
            job.save();
            Ok(job.report)
        }
        Err(e) => {
            job.report.state = JobState::Failed;
            job.report.message = Some(format!("{e:#}"));
            job.report.finished = Some(now());
            job.save();
            Err(e)
        }
    }
}

fn guidance(p: &Params, mode: &str, affine: Option<&Affine>) -> Guidance {
    match mode {
        "none" => Guidance::None,
        "cfg" => Guidance::Cfg,
        "ag" => Guidance::Ag {
            threshold: p.ag_threshold,
            per_batch: p.ag_per_batch,
        },
        _ => Guidance::LinearAg {
            threshold: p.ag_threshold,
            estimate: match affine {
                Some(a) => Estimate::Affine(a.clone()),
                None => Estimate::Cached,
            },
        },
    }
}

/// LinearAG's affine estimate for this model, sampler, step count and scale: read from
/// beside the model, else fitted on full-CFG calibration samples and saved there.
fn affine_for(
    model: &dyn Model,
    model_dir: &Path,
    sched: &Scheduler,
    p: &Params,
    classes: usize,
) -> anyhow::Result<(Affine, bool)> {
    // A text-conditioned model's fit belongs to its prompts.
    let prompt = match &p.prompt {
        Some(t) => format!(
            "-p{:08x}",
            fnv1a(&format!("{t}\0{}", p.negative_prompt)) as u32
        ),
        None => String::new(),
    };
    let name = format!(
        "linear_ag-{}-{}steps-w{}{prompt}.json",
        sched.kind, p.steps, p.scale
    );
    let path = model_dir.join(&name);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(a) = serde_json::from_str::<Affine>(&text)
    {
        return Ok((a, false));
    }
    let (fit, held) = CALIBRATION;
    let k = fit + held;
    // Calibration seeds are apart from any job's (which start at --seed).
    let req = Request {
        guidance: Guidance::Cfg,
        scale: p.scale,
        rescale: p.rescale,
        classes: (0..k).map(|i| (i % classes.max(1)) as u32).collect(),
        seeds: (0..k as u64).map(|i| 0xCA11_B000 + i).collect(),
        noise: None,
        record: true,
        compare: p.ag_compare,
    };
    let out = sample::sample(model, sched, &req, &mut |_| {})?;
    let per_step = sample::fit_affine(&out.trace, fit).map_err(anyhow::Error::msg)?;
    let a = Affine {
        steps: p.steps,
        sampler: sched.kind.to_string(),
        scale: p.scale,
        coefficients: per_step.iter().map(|(c, _)| *c).collect(),
        holdout_error: per_step.iter().map(|(_, e)| *e).collect(),
        fit_samples: fit,
        holdout_samples: held,
    };
    let json = serde_json::to_vec_pretty(&a)?;
    crate::atomic::write_atomically(&path, &json)
        .with_context(|| format!("saving the LinearAG fit to {}", path.display()))?;
    Ok((a, true))
}

/// FNV-1a, for short stable names.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An opened checkpoint: one of descent's denoisers, or a Stable Diffusion pipeline.
enum Subject {
    Denoiser(Box<Opened>),
    Pipeline(Box<sd::Pipeline>),
}

/// A pipeline's scheduler config, as `export::open` reads a denoiser's.
fn read_scheduler(dir: &Path) -> anyhow::Result<ReadConfig> {
    let path = dir.join("scheduler").join("scheduler_config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: the noise schedule", path.display()))?;
    scheduler_config::read(&text, &path.display().to_string()).map_err(anyhow::Error::msg)
}

fn parse_dtype(p: &Params, device: &Device) -> DType {
    match p.dtype.as_deref() {
        Some("f16") => DType::F16,
        Some("bf16") => DType::BF16,
        Some(_) => DType::F32,
        None => sd::default_dtype(device),
    }
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "f32",
    }
}

/// Opens the checkpoint at `dir` after checking that sampling it fits in memory.
fn open_subject(
    dir: &Path,
    chosen: &device::Chosen,
    p: &Params,
) -> anyhow::Result<(Subject, ReadConfig)> {
    let over = |fp: &descent_models::memory::Footprint| -> anyhow::Result<()> {
        if let Ok(avail) = crate::runs::memory::Available::now(&chosen.label)
            && let Some(need) = crate::runs::memory::shortfall(fp, &avail)
        {
            bail!(
                "-n {}: sampling {} would need {need}; ask for fewer samples",
                p.n,
                dir.display()
            );
        }
        Ok(())
    };
    // The biggest batch: every sample's conditional pass, and its unconditional one unless
    // every mode is unguided.
    let rows = if p.modes.iter().all(|m| m == "none") {
        p.n
    } else {
        2 * p.n
    };
    match export::config(dir).map_err(anyhow::Error::msg)? {
        export::Config::StableDiffusion(info) => {
            let dtype = parse_dtype(p, &chosen.device);
            let latent: usize = info.latent_shape().iter().product();
            over(&descent_models::memory::sampling(
                info.param_count(),
                dtype.size_in_bytes() as u64,
                info.activation_elems(),
                latent,
                rows,
            ))?;
            let sched = read_scheduler(dir)?;
            let pipeline =
                sd::Pipeline::load(*info, dtype, &chosen.device).map_err(anyhow::Error::msg)?;
            Ok((Subject::Pipeline(Box::new(pipeline)), sched))
        }
        other => {
            if p.dtype.as_deref().is_some_and(|d| d != "f32") {
                bail!("--dtype: descent's own denoisers sample in f32");
            }
            let opened =
                export::open_config(dir, other, &chosen.device).map_err(anyhow::Error::msg)?;
            let spec = opened.net.spec();
            // A forward pass keeps about half of what a training step does.
            over(&descent_models::memory::sampling(
                spec.param_count(),
                4,
                spec.activation_elems() / 2,
                spec.features(),
                rows,
            ))?;
            let sched = opened.scheduler.clone();
            Ok((Subject::Denoiser(Box::new(opened)), sched))
        }
    }
}

fn run(ws: &Workspace, p: &Params, job: &mut Job, quiet: bool) -> anyhow::Result<()> {
    p.check().map_err(anyhow::Error::msg)?;
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };
    let model_dir = resolve_checkpoint(ws, &p.checkpoint)?;
    let chosen = device::resolve(ws.settings.device).map_err(anyhow::Error::msg)?;
    let (subject, sched_file) = open_subject(&model_dir, &chosen, p)?;
    let kind = match &p.sampler {
        Some(s) => SamplerKind::parse(s).map_err(|e| anyhow::anyhow!("--sampler: {e}"))?,
        None => sched_file
            .config
            .default_sampler
            .unwrap_or(SamplerKind::Ddim),
    };
    let sched = Scheduler::new(kind, &sched_file.config, p.steps, p.eta)
        .map_err(|e| anyhow::anyhow!("--steps {}: {e}", p.steps))?;
    // The model the sampler calls, and how many conditions it has (a pipeline: its prompt).
    let prompted;
    let (model, classes, class_names): (&dyn Model, usize, Vec<String>) = match &subject {
        Subject::Denoiser(o) => {
            if p.prompt.is_some() {
                bail!(
                    "--prompt: {} is class-conditional; use --class",
                    model_dir.display()
                );
            }
            (&o.net, o.net.spec().classes, o.saved.class_names.clone())
        }
        Subject::Pipeline(pl) => {
            if p.class.is_some() {
                bail!("--class: {} takes a --prompt", model_dir.display());
            }
            let Some(prompt) = &p.prompt else {
                bail!(
                    "{}: a text-to-image pipeline; give it --prompt",
                    model_dir.display()
                );
            };
            if p.judge.is_some() {
                bail!("--judge: a judge classifies the samples of a class-conditional model");
            }
            prompted = pl
                .encode(prompt, &p.negative_prompt)
                .map_err(anyhow::Error::msg)?;
            for (flag, cut) in ["--prompt", "--negative-prompt"]
                .iter()
                .zip(prompted.truncated)
            {
                if cut > 0 {
                    let note = format!(
                        "{flag}: {cut} tokens past the tokenizer's {} were dropped",
                        prompted.max_tokens
                    );
                    say(note.clone());
                    job.report.notes.push(note);
                }
            }
            job.report.dtype = Some(dtype_name(pl.dtype).into());
            job.report.image_shape = pl.info.image_shape();
            (&prompted, 1, vec![prompt.clone()])
        }
    };
    let shape = model.sample_shape().to_vec();
    let f: usize = shape.iter().product();
    if classes == 0 && p.modes.iter().any(|m| m != "none") {
        bail!(
            "{}: the model is unconditional; guidance needs a class-conditional model (use --guidance none)",
            model_dir.display()
        );
    }
    if let Some(c) = p.class
        && c as usize >= classes
    {
        bail!(
            "--class {c}: the model has {classes} classes (0–{})",
            classes.saturating_sub(1)
        );
    }
    let class_of: Vec<u32> = (0..p.n)
        .map(|i| match p.class {
            Some(c) => c,
            None if classes == 0 => model.null_class(),
            None => (i % classes) as u32,
        })
        .collect();
    let seeds: Vec<u64> = (0..p.n as u64).map(|i| p.seed.wrapping_add(i)).collect();
    let noise = match &p.noise {
        Some(path) => Some(read_noise(path, p.n, &shape)?),
        None => None,
    };
    let judge = match &p.judge {
        Some(run) => Some(Judge::open(ws, run)?),
        None => None,
    };
    if let Some(j) = &judge {
        job.report.judge_val_accuracy = Some(j.val_accuracy);
        say(format!(
            "judge: {:.1}% accurate on its own validation split",
            j.val_accuracy * 100.0
        ));
    }
    {
        let r = &mut job.report;
        r.model_dir = Some(model_dir.clone());
        r.sampler = Some(kind.to_string());
        r.sample_shape = shape.clone();
        r.class_names = class_names;
        r.seeds = seeds.clone();
        r.classes = class_of.clone();
        r.ignored_keys = sched_file.ignored.clone();
        r.total_steps = p.modes.len() * p.steps;
    }
    if let Some(class) = &sched_file.class_name
        && p.sampler.is_none()
        && sched_file.config.default_sampler.is_none()
    {
        say(format!(
            "{class} is not a sampler descent has; sampling with {kind}"
        ));
    }
    job.save();
    let (image_shape, range) = match &subject {
        Subject::Denoiser(o) => (shape.clone(), o.saved.scaling.image_range()),
        Subject::Pipeline(pl) => (pl.info.image_shape(), Some((-1.0, 1.0))),
    };
    let fi: usize = image_shape.iter().product();
    let mut outputs: Vec<(String, Vec<f32>)> = Vec::new();
    for (m, mode) in p.modes.iter().enumerate() {
        let mut report = ModeReport {
            guidance: mode.clone(),
            ..Default::default()
        };
        let affine = if mode == "linear-ag" && p.estimate == "affine" {
            let (a, fitted) = affine_for(model, &model_dir, &sched, p, classes)?;
            let errs: Vec<f64> = a
                .holdout_error
                .iter()
                .skip(1)
                .copied()
                .filter(|e| e.is_finite())
                .collect();
            report.estimate_error =
                (!errs.is_empty()).then(|| errs.iter().sum::<f64>() / errs.len() as f64);
            if fitted {
                say(format!(
                    "fitted LinearAG's affine estimate on {} CFG samples (held-back error {:.4})",
                    a.fit_samples,
                    report.estimate_error.unwrap_or(f64::NAN)
                ));
            }
            Some(a)
        } else {
            None
        };
        let req = Request {
            guidance: guidance(p, mode, affine.as_ref()),
            scale: p.scale,
            rescale: p.rescale,
            classes: class_of.clone(),
            seeds: seeds.clone(),
            noise: noise.clone(),
            record: false,
            compare: p.ag_compare,
        };
        let t0 = Instant::now();
        let base = m * p.steps;
        let out: Output = sample::sample(model, &sched, &req, &mut |done| {
            job.report.done_steps = base + done;
            // The report is rewritten whole: often enough for a progress bar (the TUI
            // reads it each second), no more.
            if job.last_write.elapsed().as_secs_f64() >= 1.0 {
                job.save();
            }
        })?;
        report.seconds = t0.elapsed().as_secs_f64();
        report.nfe_total = out.nfe.iter().map(|&v| v as u64).sum();
        report.nfe = out.nfe.clone();
        report.stopped_at = out.stopped_at.clone();
        report.cosines = out.cosines.clone();
        let data = match &subject {
            Subject::Denoiser(o) => {
                let mut data = out.samples.clone();
                o.saved.scaling.invert(&mut data, f);
                data
            }
            Subject::Pipeline(pl) => pl.decode(&out.samples)?,
        };
        let sub = dir_for(job.dir, mode)?;
        write_outputs(
            &sub,
            (&out.samples, &shape),
            (&data, &image_shape),
            &class_of,
            range,
            &mut report,
            mode,
        )?;
        if let Some(j) = &judge {
            // Images are judged as they are drawn: clamped to the data's range. (A pixel that
            // is always 0 in the data has a tiny spread; a little noise there would sit many
            // standard deviations out.)
            let seen: Vec<f32> = match range {
                Some((lo, hi)) => data.iter().map(|v| v.clamp(lo, hi)).collect(),
                None => data.clone(),
            };
            let got = j.classify(&seen, &image_shape)?;
            let hits = got.iter().zip(&class_of).filter(|(a, b)| a == b).count();
            report.judged_accuracy = Some(hits as f64 / p.n as f64);
        }
        say(format!(
            "{mode}: {} NFEs ({:.1} per sample) in {:.2} s{}",
            report.nfe_total,
            report.nfe_total as f64 / p.n as f64,
            report.seconds,
            report.judged_accuracy.map_or(String::new(), |a| format!(
                ", judged accuracy {:.1}%",
                a * 100.0
            ))
        ));
        job.report.modes.push(report);
        outputs.push((mode.clone(), data));
        job.report.done_steps = base + p.steps;
        job.save();
    }
    if let Some(k) = outputs.iter().position(|(m, _)| m == "cfg") {
        let cfg_nfe = job.report.modes[k].nfe_total as f64;
        for (i, (_, data)) in outputs.iter().enumerate() {
            let r = &mut job.report.modes[i];
            r.distance_to_cfg = Some(render::distance(data, &outputs[k].1, fi, range));
            r.nfe_vs_cfg = Some(r.nfe_total as f64 / cfg_nfe.max(1.0));
        }
    }
    Ok(())
}

fn dir_for(job: &Path, mode: &str) -> anyhow::Result<PathBuf> {
    let d = job.join(mode);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// Writes one mode's samples: the model-space tensor (a pipeline's latents), then PNGs and
/// a grid (images, `data` with its shape) or a CSV and a scatter plot (points).
fn write_outputs(
    dir: &Path,
    (model_space, model_shape): (&[f32], &[usize]),
    (data, shape): (&[f32], &[usize]),
    classes: &[u32],
    range: Option<(f32, f32)>,
    report: &mut ModeReport,
    mode: &str,
) -> anyhow::Result<()> {
    let n = classes.len();
    let dims: Vec<usize> = [n].into_iter().chain(model_shape.iter().copied()).collect();
    let t = Tensor::from_vec(model_space.to_vec(), dims, &Device::Cpu)?;
    let st = dir.join("samples.safetensors");
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("samples".to_string(), t)]),
        &st,
    )?;
    report.files.push(format!("{mode}/samples.safetensors"));
    let f: usize = shape.iter().product();
    let png_err = |p: &Path| format!("writing {}", p.display());
    match (shape.len(), range) {
        (3, Some(range)) => {
            let imgs: Vec<image::RgbImage> = data
                .chunks(f)
                .map(|s| render::to_image(s, shape, range))
                .collect();
            for (i, img) in imgs.iter().enumerate() {
                let p = dir.join(format!("sample-{i:04}.png"));
                img.save(&p).with_context(|| png_err(&p))?;
            }
            report.files.push(format!("{mode}/sample-*.png"));
            let cols = (n as f64).sqrt().ceil() as usize;
            let p = dir.join("grid.png");
            render::grid(&imgs, cols, render::zoom(shape[2]))
                .save(&p)
                .with_context(|| png_err(&p))?;
            report.grid = Some(format!("{mode}/grid.png"));
        }
        _ if f == 2 => {
            let p = dir.join("points.csv");
            render::write_points_csv(&p, data, classes).with_context(|| png_err(&p))?;
            report.files.push(format!("{mode}/points.csv"));
            let p = dir.join("scatter.png");
            render::scatter(data, classes, 320, render::bounds(data))
                .save(&p)
                .with_context(|| png_err(&p))?;
            report.grid = Some(format!("{mode}/scatter.png"));
        }
        _ => {}
    }
    Ok(())
}
