//! Diffusion models: descent's schedulers, the denoisers it trains, their training, the
//! guided sampler (CFG, AG, LinearAG), the diffusers-style folders they are saved in, and
//! Stable Diffusion pipelines.

pub mod export;
pub mod net;
mod net_host;
mod net_tape;
pub mod sample;
pub mod schedule;
pub mod scheduler_config;
pub mod sd;
pub mod train;

use crate::data::Dataset;
use net::DenoiserSpec;
use serde::{Deserialize, Serialize};

/// How data maps into the model's space, x_model = (x − shift)/scale: images to [−1, 1]
/// by their range, points to zero mean and unit variance per coordinate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// One value for all features, or one per feature.
    pub shift: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Scaling {
    /// Fitted on the training rows only.
    pub fn fit(data: &Dataset, rows: &[usize]) -> Scaling {
        let f = data.features();
        let vals = |j: usize| rows.iter().map(move |&r| data.inputs[r * f + j] as f64);
        if data.input_shape.len() == 3 {
            let (lo, hi) = (0..f)
                .flat_map(vals)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
            let half = ((hi - lo) / 2.0).max(1e-12);
            return Scaling {
                shift: vec![((hi + lo) / 2.0) as f32],
                scale: vec![half as f32],
            };
        }
        let (shift, scale) = data
            .standardization(rows)
            .into_iter()
            .map(|(mean, std)| (mean as f32, std as f32))
            .unzip();
        Scaling { shift, scale }
    }

    fn at(&self, j: usize) -> (f32, f32) {
        let k = if self.shift.len() == 1 {
            0
        } else {
            j % self.shift.len()
        };
        (self.shift[k], self.scale[k])
    }

    /// Data space → model space, for rows of `features` values.
    pub fn apply(&self, values: &mut [f32], features: usize) {
        for (i, v) in values.iter_mut().enumerate() {
            let (s, k) = self.at(i % features);
            *v = (*v - s) / k;
        }
    }

    /// Model space → data space.
    pub fn invert(&self, values: &mut [f32], features: usize) {
        for (i, v) in values.iter_mut().enumerate() {
            let (s, k) = self.at(i % features);
            *v = *v * k + s;
        }
    }

    /// The data-space range images were scaled from (`None` for points).
    pub fn image_range(&self) -> Option<(f32, f32)> {
        (self.shift.len() == 1)
            .then(|| (self.shift[0] - self.scale[0], self.shift[0] + self.scale[0]))
    }
}

/// The class name descent's denoisers are saved under in `unet/config.json`.
pub const DENOISER_CLASS: &str = "DescentDenoiser";

/// `unet/config.json` of a descent denoiser: the net, the data scaling, the class names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    #[serde(rename = "_class_name")]
    pub class_name: String,
    #[serde(flatten)]
    pub spec: DenoiserSpec,
    pub scaling: Scaling,
    pub class_names: Vec<String>,
}

impl SavedModel {
    pub fn new(spec: DenoiserSpec, scaling: Scaling, class_names: Vec<String>) -> SavedModel {
        SavedModel {
            class_name: DENOISER_CLASS.into(),
            spec,
            scaling,
            class_names,
        }
    }
}
