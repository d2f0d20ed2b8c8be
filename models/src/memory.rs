//! Memory a run needs, estimated from its shapes before anything is allocated, so a model
//! that cannot fit is refused with a reason instead of aborting in the middle of an
//! allocation. Each kind of run lists its parts in a [`Footprint`]; whether they fit is the
//! application's question, since it knows the device's free memory (RAM from the OS, a GPU's
//! from NVML).
//!
//! The numbers are estimates of the peak, not accounts: activations are counted with the
//! factors of descent's own forward and backward passes (below), and allocator slack,
//! candle's kernels' scratch space and the process itself (a few tens of MB) are not.

use crate::data::Dataset;
use crate::nn::{Layer, ModelSpec};
use crate::optim::OptimName;

const F32: u64 = 4;

/// Where a part of a run's memory lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// On the training device (the same RAM as [`Place::Host`] for a CPU run).
    Device,
    /// In host memory whatever the device: the dataset, the optimizer's state, buffers.
    Host,
}

/// When a part is held: for the whole run, or only during one kind of work. The kinds of
/// work take turns, so the peak is what is always held plus the largest of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Always,
    /// A training step: activations, gradients.
    Step,
    /// An evaluation.
    Eval,
    /// Writing a checkpoint.
    Checkpoint,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub what: String,
    pub bytes: u64,
    pub place: Place,
    pub phase: Phase,
}

/// The parts of a run's memory, and its largest tensor (the usual culprit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Footprint {
    pub parts: Vec<Part>,
    /// (name, shape in words, bytes) of the largest parameter tensor.
    pub largest: Option<(String, String, u64)>,
}

impl Footprint {
    pub fn add(&mut self, what: impl Into<String>, bytes: u64, place: Place, phase: Phase) {
        self.parts.push(Part {
            what: what.into(),
            bytes,
            place,
            phase,
        });
    }

    /// Peak bytes of the parts `keep` selects: what is always held, plus the largest phase.
    fn peak(&self, keep: impl Fn(&Part) -> bool) -> u64 {
        let sum = |phase: Phase| {
            self.parts
                .iter()
                .filter(|p| p.phase == phase && keep(p))
                .fold(0u64, |a, p| a.saturating_add(p.bytes))
        };
        let busiest = [Phase::Step, Phase::Eval, Phase::Checkpoint]
            .into_iter()
            .map(sum)
            .max()
            .unwrap_or(0);
        sum(Phase::Always).saturating_add(busiest)
    }

    /// Peak bytes in one place (a GPU run's device memory, or its host memory).
    pub fn bytes(&self, place: Place) -> u64 {
        self.peak(|p| p.place == place)
    }

    /// Peak bytes of a run whose device is the host (a CPU run).
    pub fn total(&self) -> u64 {
        self.peak(|_| true)
    }
}

fn mul(a: usize, b: usize) -> u64 {
    (a as u64).saturating_mul(b as u64)
}

/// Activation bytes of one pass over `rows` examples: with `backward`, what the hand-written
/// (and, near enough, candle's autograd) backward keeps and makes; without, a forward pass.
fn activations(layers: &[Layer], inputs: usize, rows: usize, backward: bool) -> u64 {
    // The batch as a host vector and as a tensor.
    let mut bytes = mul(rows, inputs).saturating_mul(2 * F32);
    for layer in layers {
        let b = match *layer {
            Layer::Conv { c_in, c_out, h, w } => {
                let pixels = mul(rows, h * w);
                // im2col columns (and their gradient), pre-activation, activation, its
                // gradient and mask, and the pooled map with its argmax indices (8 bytes).
                let cols = pixels.saturating_mul((c_in * 9) as u64);
                let maps = pixels.saturating_mul(c_out as u64);
                let pooled = maps / 4;
                if backward {
                    (2 * cols + 5 * maps + 3 * pooled).saturating_mul(F32)
                } else {
                    (cols + 2 * maps + pooled).saturating_mul(F32)
                }
            }
            // Pre-activation and activation; backward adds the gradient, its mask and the
            // gradient passed down.
            Layer::Dense { out, .. } => {
                mul(rows, out).saturating_mul(if backward { 5 } else { 2 } * F32)
            }
        };
        bytes = bytes.saturating_add(b);
    }
    bytes
}

/// A dataset in memory with its split and batch indices, as a part.
fn dataset_part(data: &Dataset) -> (String, u64) {
    let n = data.len() as u64;
    let bytes = (data.inputs.len() as u64)
        .saturating_mul(F32)
        .saturating_add(n.saturating_mul(F32 + 2 * 8));
    (format!("dataset ({} examples)", data.len()), bytes)
}

/// The parts every trained model has: its weights, gradients and optimizer state, the
/// data, one training step's and one evaluation chunk's activations (given, with their
/// descriptions, as the data is), and the checkpoint copy of the optimizer state.
pub fn trained_parts(
    params: u64,
    optimizer: OptimName,
    data: (String, u64),
    step: (String, u64),
    eval: (String, u64),
) -> Footprint {
    let weights = params.saturating_mul(F32);
    let mut fp = Footprint::default();
    fp.add("weights", weights, Place::Device, Phase::Always);
    // Optimizer state is host memory on every device (the fused update keeps it in Vecs),
    // and a checkpoint copies it into tensors to write it.
    let (state_name, state) = match optimizer {
        OptimName::Adamw => ("AdamW moments", weights.saturating_mul(2)),
        OptimName::Sgd => ("SGD momentum", weights),
    };
    fp.add(state_name, state, Place::Host, Phase::Always);
    fp.add(data.0, data.1, Place::Host, Phase::Always);
    fp.add("gradients", weights, Place::Device, Phase::Step);
    fp.add(step.0, step.1, Place::Device, Phase::Step);
    fp.add(eval.0, eval.1, Place::Device, Phase::Eval);
    fp.add(
        "checkpoint copy of the optimizer state",
        state,
        Place::Host,
        Phase::Checkpoint,
    );
    fp
}

/// A supervised run: the network of `model` (its input shape and outputs filled in from
/// `data`), trained with `optimizer` on batches of `batch`, evaluated in chunks of
/// `eval_rows`. Errors when the model cannot be built at all (a cnn on flat inputs).
pub fn supervised(
    model: &ModelSpec,
    optimizer: OptimName,
    batch: usize,
    eval_rows: usize,
    data: &Dataset,
) -> Result<Footprint, String> {
    let layers = model.layers()?;
    let params = layers
        .iter()
        .fold(0u64, |a, l| a.saturating_add(l.param_elems()));
    let inputs = data.features();
    let eval_rows = eval_rows.min(data.len());
    let mut fp = trained_parts(
        params,
        optimizer,
        dataset_part(data),
        (
            format!("step activations (batch of {batch})"),
            activations(&layers, inputs, batch, true),
        ),
        (
            format!("evaluation activations ({eval_rows} rows)"),
            activations(&layers, inputs, eval_rows, false),
        ),
    );
    let (mut conv, mut dense) = (0, 0);
    for layer in &layers {
        let (name, shape) = match *layer {
            Layer::Conv { c_in, c_out, .. } => {
                conv += 1;
                (
                    format!("conv{}.weight", conv - 1),
                    format!("{c_out} × {c_in} × 3 × 3"),
                )
            }
            Layer::Dense { fan_in, out, .. } => {
                dense += 1;
                (
                    format!("fc{}.weight", dense - 1),
                    format!("{fan_in} × {out}"),
                )
            }
        };
        let bytes = layer.weight_elems().saturating_mul(F32);
        if fp.largest.as_ref().is_none_or(|l| bytes > l.2) {
            fp.largest = Some((name, shape, bytes));
        }
    }
    Ok(fp)
}

/// A run whose net is not a [`ModelSpec`] (a denoiser): `params` weights, `per_sample`
/// activation elements per example in a training step (forward and backward, half of that
/// for an evaluation), trained with `optimizer` on batches of `batch`, evaluated in chunks of
/// `eval_rows`.
pub fn trained(
    params: u64,
    optimizer: OptimName,
    per_sample: u64,
    batch: usize,
    eval_rows: usize,
    data: &Dataset,
) -> Footprint {
    let eval_rows = eval_rows.min(data.len());
    let bytes = |elems: u64, rows: usize| elems.saturating_mul(rows as u64).saturating_mul(F32);
    trained_parts(
        params,
        optimizer,
        dataset_part(data),
        (
            format!("step activations (batch of {batch})"),
            bytes(per_sample, batch),
        ),
        (
            format!("evaluation activations ({eval_rows} rows)"),
            bytes(per_sample / 2, eval_rows),
        ),
    )
}

/// Sampling `rows` network inputs at once (CFG's two passes count twice): `params` weights
/// of `bytes` each, and one forward pass's activations (`per_row` elements each, of the
/// same width) on the device; the samples and their noise (`features` each, f32) on the host.
pub fn sampling(params: u64, bytes: u64, per_row: u64, features: usize, rows: usize) -> Footprint {
    let mut fp = Footprint::default();
    fp.add(
        "weights",
        params.saturating_mul(bytes),
        Place::Device,
        Phase::Always,
    );
    fp.add(
        format!("activations of a batch of {rows}"),
        per_row.saturating_mul(rows as u64).saturating_mul(bytes),
        Place::Device,
        Phase::Step,
    );
    fp.add(
        "samples and their noise",
        mul(features, rows).saturating_mul(2 * F32),
        Place::Host,
        Phase::Always,
    );
    fp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;
    use crate::nn::{Activation, Arch};

    fn data(n: usize, features: usize, classes: usize) -> Dataset {
        Dataset {
            name: "t".into(),
            inputs: vec![0.0; n * features],
            input_shape: vec![features],
            targets: Targets::Classes {
                labels: vec![0; n],
                names: (0..classes).map(|c| c.to_string()).collect(),
            },
            feature_names: vec![],
        }
    }

    fn mlp(hidden: Vec<usize>, inputs: usize, outputs: usize) -> ModelSpec {
        ModelSpec {
            arch: Arch::Mlp,
            input_shape: vec![inputs],
            outputs,
            hidden,
            channels: vec![],
            activation: Activation::Relu,
            layer_norm: false,
        }
    }

    fn part(fp: &Footprint, prefix: &str) -> u64 {
        fp.parts
            .iter()
            .find(|p| p.what.starts_with(prefix))
            .unwrap()
            .bytes
    }

    #[test]
    fn the_digits_mlp_matches_a_hand_count() {
        // 64 → 256 → 256 → 10: (64·256 + 256) + (256·256 + 256) + (256·10 + 10) = 85,002
        // parameters, 340,008 bytes of f32.
        let d = data(1797, 64, 10);
        let fp = supervised(
            &mlp(vec![256, 256], 64, 10),
            OptimName::Adamw,
            128,
            1024,
            &d,
        )
        .unwrap();
        assert_eq!(part(&fp, "weights"), 340_008);
        assert_eq!(part(&fp, "gradients"), 340_008);
        assert_eq!(part(&fp, "AdamW"), 680_016);
        // Batch 128: the batch twice (128·64·4·2 = 65,536), then 5 buffers per dense
        // output: 128·(256+256+10)·4·5 = 1,336,320. The eval chunk (1024 rows, forward
        // only): 1024·64·8 + 1024·522·8 = 4,800,512.
        assert_eq!(part(&fp, "step activations"), 1_401_856);
        assert_eq!(part(&fp, "evaluation activations (1024 rows)"), 4_800_512);
        // Inputs 1797·64·4, then 4 + 16 bytes per example for labels and indices.
        let dataset = 1797 * 64 * 4 + 1797 * 20;
        assert_eq!(part(&fp, "dataset"), dataset);
        // The peak: weights, moments and data always; then the largest phase, here the
        // evaluation (the step needs 340,008 + 1,401,856, a checkpoint 680,016).
        assert_eq!(fp.total(), 340_008 + 680_016 + dataset + 4_800_512);
        assert_eq!(fp.bytes(Place::Host), 680_016 + dataset + 680_016);
        assert_eq!(fp.bytes(Place::Device), 340_008 + 4_800_512);
        assert_eq!(
            fp.largest,
            Some(("fc1.weight".into(), "256 × 256".into(), 262_144))
        );
        let sgd = supervised(&mlp(vec![256, 256], 64, 10), OptimName::Sgd, 128, 1024, &d).unwrap();
        assert_eq!(part(&sgd, "SGD momentum"), 340_008);
    }

    #[test]
    fn an_absurd_layer_is_counted_without_overflow() {
        let d = data(10, 64, 10);
        let fp = supervised(
            &mlp(vec![100_000_000], 64, 10),
            OptimName::Adamw,
            128,
            1024,
            &d,
        )
        .unwrap();
        // 64·1e8 + 1e8 + 1e8·10 + 10 parameters.
        assert_eq!(
            part(&fp, "weights"),
            (6_400_000_000 + 100_000_000 + 1_000_000_000 + 10) * 4
        );
        assert_eq!(
            fp.largest,
            Some(("fc0.weight".into(), "64 × 100000000".into(), 25_600_000_000))
        );
        let huge = supervised(
            &mlp(vec![usize::MAX / 2, usize::MAX / 2], 64, 10),
            OptimName::Adamw,
            128,
            1024,
            &d,
        )
        .unwrap();
        assert_eq!(huge.total(), u64::MAX, "saturates rather than wrapping");
    }

    #[test]
    fn a_cnn_counts_its_convolution_buffers() {
        let d = Dataset {
            input_shape: vec![1, 8, 8],
            ..data(100, 64, 10)
        };
        let spec = ModelSpec {
            arch: Arch::Cnn,
            input_shape: vec![1, 8, 8],
            channels: vec![16],
            ..mlp(vec![], 64, 10)
        };
        let fp = supervised(&spec, OptimName::Sgd, 64, 1024, &d).unwrap();
        // conv0 16·1·9 + 16, then fc0 (16·4·4)·10 + 10.
        assert_eq!(part(&fp, "weights"), (144 + 16 + 2560 + 10) * 4);
        // Batch 64: cols 64·64·9, maps 64·64·16, pooled a quarter of the maps.
        let (cols, maps) = (64 * 64 * 9u64, 64 * 64 * 16u64);
        let train = 64 * 64 * 8 + (2 * cols + 5 * maps + 3 * maps / 4) * 4 + 64 * 10 * 20;
        let (ecols, emaps) = (100 * 64 * 9u64, 100 * 64 * 16u64);
        let eval = 100 * 64 * 8 + (ecols + 2 * emaps + emaps / 4) * 4 + 100 * 10 * 8;
        assert_eq!(part(&fp, "step activations"), train);
        assert_eq!(part(&fp, "evaluation activations (100 rows)"), eval);
    }
}
