//! diffusers' `scheduler_config.json`, read into a [`NoiseConfig`] and written from one.
//! Keys descent does not use are listed back to the caller; values it cannot honour are an
//! error naming the key.

use super::schedule::{BetaSchedule, NoiseConfig, Prediction, SamplerKind, Spacing};
use serde_json::{Map, Value, json};

/// A config read from a file, with the keys that were ignored.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    pub config: NoiseConfig,
    /// Keys present in the file that descent does not use.
    pub ignored: Vec<String>,
    /// The file's `_class_name`.
    pub class_name: Option<String>,
}

pub fn read(text: &str, file: &str) -> Result<ReadConfig, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let Value::Object(map) = v else {
        return Err(format!("{file}: expected a JSON object"));
    };
    let mut c = NoiseConfig::default();
    let mut ignored = Vec::new();
    let err = |key: &str, why: &str| format!("{file}: {key}: {why}");
    let num = |key: &str, v: &Value| v.as_f64().ok_or_else(|| err(key, "expected a number"));
    let uint = |key: &str, v: &Value| {
        v.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| err(key, "expected a whole number"))
    };
    let boolean = |key: &str, v: &Value| {
        v.as_bool()
            .ok_or_else(|| err(key, "expected true or false"))
    };
    let string = |key: &str, v: &Value| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| err(key, "expected a string"))
    };
    let enum_of = |key: &str, v: &Value, names: &str| -> Result<Value, String> {
        let s = string(key, v)?;
        if names.split(", ").any(|n| n == s) {
            Ok(Value::String(s))
        } else {
            Err(err(key, &format!("descent supports {names}, not {s:?}")))
        }
    };
    let mut class_name = None;
    for (key, v) in &map {
        match key.as_str() {
            "_class_name" => {
                let s = string(key, v)?;
                c.default_sampler = SamplerKind::from_class_name(&s);
                class_name = Some(s);
            }
            "_diffusers_version" => {}
            "num_train_timesteps" => {
                c.train_timesteps = uint(key, v)?;
                if c.train_timesteps == 0 {
                    return Err(err(key, "must be at least 1"));
                }
            }
            "beta_start" => c.beta_start = num(key, v)?,
            "beta_end" => c.beta_end = num(key, v)?,
            "beta_schedule" => {
                let v = enum_of(key, v, "linear, scaled_linear, squaredcos_cap_v2")?;
                c.beta_schedule = serde_json::from_value::<BetaSchedule>(v).expect("checked");
            }
            "prediction_type" => {
                let v = enum_of(key, v, "epsilon, v_prediction, sample")?;
                c.prediction = serde_json::from_value::<Prediction>(v).expect("checked");
            }
            "timestep_spacing" => {
                let v = enum_of(key, v, "leading, trailing, linspace")?;
                c.spacing = Some(serde_json::from_value::<Spacing>(v).expect("checked"));
            }
            "steps_offset" => c.steps_offset = uint(key, v)?,
            "clip_sample" => c.clip_sample = boolean(key, v)?,
            "clip_sample_range" => c.clip_sample_range = num(key, v)?,
            "set_alpha_to_one" => c.set_alpha_to_one = boolean(key, v)?,
            // Values with one meaning descent implements: anything else is refused.
            "trained_betas" if !v.is_null() => {
                return Err(err(
                    key,
                    "explicit betas are not supported (use beta_schedule)",
                ));
            }
            "thresholding"
            | "rescale_betas_zero_snr"
            | "use_karras_sigmas"
            | "use_exponential_sigmas"
            | "use_beta_sigmas"
                if v.as_bool() == Some(true) =>
            {
                return Err(err(key, "descent cannot honour true here"));
            }
            "variance_type" if !v.is_null() && v.as_str() != Some("fixed_small") => {
                return Err(err(key, "descent's DDPM has the fixed_small variance only"));
            }
            "interpolation_type" if v.as_str().is_some_and(|s| s != "linear") => {
                return Err(err(key, "descent interpolates sigmas linearly only"));
            }
            "final_sigmas_type" if v.as_str().is_some_and(|s| s != "zero") => {
                return Err(err(key, "descent ends the sigmas with zero only"));
            }
            "timestep_type" if v.as_str().is_some_and(|s| s != "discrete") => {
                return Err(err(key, "descent has discrete timesteps only"));
            }
            // ... and the values descent does honour.
            "trained_betas"
            | "thresholding"
            | "rescale_betas_zero_snr"
            | "use_karras_sigmas"
            | "use_exponential_sigmas"
            | "use_beta_sigmas"
            | "variance_type"
            | "interpolation_type"
            | "final_sigmas_type"
            | "timestep_type" => {}
            _ => ignored.push(key.clone()),
        }
    }
    if !(c.beta_start.is_finite() && c.beta_end.is_finite() && c.beta_start > 0.0)
        || c.beta_end >= 1.0
        || c.beta_start > c.beta_end
    {
        return Err(format!(
            "{file}: beta_start = {} and beta_end = {} must satisfy 0 < start ≤ end < 1",
            c.beta_start, c.beta_end
        ));
    }
    Ok(ReadConfig {
        config: c,
        ignored,
        class_name,
    })
}

/// The diffusers file for `config` sampled with `sampler`.
pub fn write(config: &NoiseConfig, sampler: SamplerKind) -> String {
    let mut m = Map::new();
    m.insert("_class_name".into(), json!(sampler.class_name()));
    m.insert("_diffusers_version".into(), json!("0.31.0"));
    m.insert("num_train_timesteps".into(), json!(config.train_timesteps));
    m.insert("beta_start".into(), json!(config.beta_start));
    m.insert("beta_end".into(), json!(config.beta_end));
    m.insert(
        "beta_schedule".into(),
        serde_json::to_value(config.beta_schedule).expect("plain enum"),
    );
    m.insert(
        "prediction_type".into(),
        serde_json::to_value(config.prediction).expect("plain enum"),
    );
    m.insert(
        "timestep_spacing".into(),
        serde_json::to_value(config.spacing_for(sampler)).expect("plain enum"),
    );
    m.insert("steps_offset".into(), json!(config.steps_offset));
    m.insert("clip_sample".into(), json!(config.clip_sample));
    m.insert("clip_sample_range".into(), json!(config.clip_sample_range));
    m.insert("set_alpha_to_one".into(), json!(config.set_alpha_to_one));
    m.insert("trained_betas".into(), Value::Null);
    serde_json::to_string_pretty(&Value::Object(m)).expect("serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stable_diffusion_config_reads_and_lists_what_it_ignores() {
        let text = r#"{
          "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0",
          "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
          "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true,
          "steps_offset": 1, "trained_betas": null, "clip_sample": false
        }"#;
        let r = read(text, "scheduler_config.json").unwrap();
        assert_eq!(r.config.beta_schedule, BetaSchedule::ScaledLinear);
        assert_eq!(r.config.steps_offset, 1);
        assert!(!r.config.set_alpha_to_one && !r.config.clip_sample);
        assert_eq!(r.config.default_sampler, None);
        assert_eq!(r.class_name.as_deref(), Some("PNDMScheduler"));
        assert_eq!(r.ignored, vec!["skip_prk_steps".to_string()]);
    }

    #[test]
    fn values_descent_cannot_honour_name_the_key() {
        let e = read(r#"{"thresholding": true}"#, "s.json").unwrap_err();
        assert!(e.contains("s.json: thresholding"), "{e}");
        let e = read(r#"{"beta_schedule": "sigmoid"}"#, "s.json").unwrap_err();
        assert!(e.contains("beta_schedule") && e.contains("sigmoid"), "{e}");
        let e = read(r#"{"num_train_timesteps": "x"}"#, "s.json").unwrap_err();
        assert!(
            e.contains("num_train_timesteps: expected a whole number"),
            "{e}"
        );
    }

    #[test]
    fn written_configs_read_back() {
        let c = NoiseConfig {
            beta_schedule: BetaSchedule::SquaredCos,
            prediction: Prediction::V,
            clip_sample: false,
            ..NoiseConfig::default()
        };
        let r = read(&write(&c, SamplerKind::Ddim), "x").unwrap();
        assert!(r.ignored.is_empty(), "{:?}", r.ignored);
        assert_eq!(
            r.config,
            NoiseConfig {
                spacing: Some(Spacing::Leading),
                default_sampler: Some(SamplerKind::Ddim),
                ..c
            }
        );
    }
}
