//! The built-in datasets, by name, with their parameters.

use super::{Dataset, Targets, synthetic};
use std::collections::BTreeMap;

/// A built-in dataset and the parameters it takes (`data.params` in an experiment).
pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    /// (name, default, meaning).
    pub params: &'static [(&'static str, f64, &'static str)],
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "digits",
        description: "8×8 handwritten digits, 1,797 images, 10 classes (UCI, via smartcore)",
        params: &[],
    },
    Builtin {
        name: "iris",
        description: "Fisher's iris: 150 flowers, 4 measurements, 3 species",
        params: &[],
    },
    Builtin {
        name: "breast-cancer",
        description: "Wisconsin breast cancer: 569 cases, 30 features, benign/malignant",
        params: &[],
    },
    Builtin {
        name: "moons",
        description: "two interleaving half circles",
        params: &[
            ("samples", 1000.0, "examples"),
            ("noise", 0.1, "Gaussian noise std"),
        ],
    },
    Builtin {
        name: "spirals",
        description: "interleaved spiral arms, one class each",
        params: &[
            ("samples", 1500.0, "examples"),
            ("arms", 3.0, "classes"),
            ("noise", 0.05, "Gaussian noise std"),
        ],
    },
    Builtin {
        name: "blobs",
        description: "isotropic Gaussian blobs",
        params: &[
            ("samples", 1000.0, "examples"),
            ("centers", 4.0, "classes"),
            ("std", 1.0, "blob std"),
        ],
    },
    Builtin {
        name: "xor",
        description: "points in [-1, 1]² labelled by the sign of x·y",
        params: &[
            ("samples", 1000.0, "examples"),
            ("noise", 0.0, "Gaussian noise std"),
        ],
    },
    Builtin {
        name: "teacher-student",
        description: "linear teacher y = w̄·x + ε, x ~ N(0, I_N) (Advani & Saxe)",
        params: &[
            ("n", 100.0, "input dimension N"),
            ("alpha", 2.0, "sample ratio P/N"),
            ("snr", 4.0, "signal-to-noise ratio"),
        ],
    },
];

fn find(name: &str) -> Result<&'static Builtin, String> {
    BUILTINS.iter().find(|b| b.name == name).ok_or_else(|| {
        let names: Vec<_> = BUILTINS.iter().map(|b| b.name).collect();
        format!(
            "unknown builtin dataset {name:?}; known: {}",
            names.join(", ")
        )
    })
}

/// Checks a builtin name and its parameters without loading anything.
pub fn validate_builtin(name: &str, params: &BTreeMap<String, f64>) -> Result<(), String> {
    let b = find(name)?;
    for (k, v) in params {
        if !b.params.iter().any(|(p, ..)| p == k) {
            let known: Vec<_> = b.params.iter().map(|(p, ..)| *p).collect();
            return Err(if known.is_empty() {
                format!("builtin:{name} takes no parameters, got `{k}`")
            } else {
                format!(
                    "builtin:{name} has no parameter `{k}`; it takes {}",
                    known.join(", ")
                )
            });
        }
        let ok = match k.as_str() {
            "samples" => *v >= 2.0 && *v <= 10_000_000.0 && v.fract() == 0.0,
            "arms" | "centers" => *v >= 2.0 && *v <= 1000.0 && v.fract() == 0.0,
            "n" => *v >= 1.0 && *v <= 100_000.0 && v.fract() == 0.0,
            "noise" | "std" => v.is_finite() && *v >= 0.0,
            "alpha" | "snr" => v.is_finite() && *v > 0.0,
            _ => true,
        };
        if !ok {
            return Err(format!("builtin:{name}: `{k}` = {v} is out of range"));
        }
    }
    Ok(())
}

/// Loads (or generates) a builtin dataset. Synthetic sets are drawn from `seed`.
pub fn load_builtin(
    name: &str,
    params: &BTreeMap<String, f64>,
    seed: u64,
) -> Result<Dataset, String> {
    validate_builtin(name, params)?;
    let b = find(name)?;
    let p = |key: &str| {
        params.get(key).copied().unwrap_or_else(|| {
            b.params
                .iter()
                .find(|(k, ..)| *k == key)
                .map(|(_, d, _)| *d)
                .expect("every parameter read has a default")
        })
    };
    let n = |key: &str| p(key) as usize;
    let d = match name {
        "digits" => digits(),
        "iris" => {
            let d = smartcore::dataset::iris::load_dataset();
            let names = ["setosa", "versicolor", "virginica"];
            from_smartcore(
                "iris",
                d.data,
                d.num_features,
                d.target,
                &names,
                d.feature_names,
            )
        }
        "breast-cancer" => {
            let d = smartcore::dataset::breast_cancer::load_dataset();
            let names = ["malignant", "benign"];
            let feats = d.feature_names;
            from_smartcore(
                "breast-cancer",
                d.data,
                d.num_features,
                d.target,
                &names,
                feats,
            )
        }
        "moons" => synthetic::moons(n("samples"), p("noise"), seed),
        "spirals" => synthetic::spirals(n("samples"), n("arms"), p("noise"), seed),
        "blobs" => synthetic::blobs(n("samples"), n("centers"), p("std"), seed),
        "xor" => synthetic::xor(n("samples"), p("noise"), seed),
        "teacher-student" => synthetic::teacher_student(n("n"), p("alpha"), p("snr"), seed),
        _ => unreachable!("find() accepted {name}"),
    };
    d.check()?;
    Ok(d)
}

fn digits() -> Dataset {
    let d = smartcore::dataset::digits::load_dataset();
    Dataset {
        name: "digits".into(),
        inputs: d.data,
        input_shape: vec![1, 8, 8],
        targets: Targets::Classes {
            labels: d.target.iter().map(|&t| t as u32).collect(),
            names: (0..10).map(|c| c.to_string()).collect(),
        },
        feature_names: (0..64)
            .map(|i| format!("pixel {}×{}", i / 8, i % 8))
            .collect(),
    }
}

fn from_smartcore(
    name: &str,
    data: Vec<f32>,
    features: usize,
    target: Vec<u32>,
    class_names: &[&str],
    feature_names: Vec<String>,
) -> Dataset {
    let feature_names = if feature_names.len() == features {
        feature_names
    } else {
        (0..features).map(|i| format!("x{i}")).collect()
    };
    Dataset {
        name: name.into(),
        inputs: data,
        input_shape: vec![features],
        targets: Targets::Classes {
            labels: target,
            names: class_names.iter().map(|s| s.to_string()).collect(),
        },
        feature_names,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads_with_defaults() {
        for b in BUILTINS {
            let d = load_builtin(b.name, &BTreeMap::new(), 0).unwrap();
            assert!(!d.is_empty(), "{}", b.name);
        }
    }

    #[test]
    fn the_real_sets_have_their_published_sizes() {
        let none = BTreeMap::new();
        let digits = load_builtin("digits", &none, 0).unwrap();
        assert_eq!((digits.len(), digits.features()), (1797, 64));
        assert_eq!(digits.targets.classes(), Some(10));
        assert_eq!(load_builtin("iris", &none, 0).unwrap().len(), 150);
        let bc = load_builtin("breast-cancer", &none, 0).unwrap();
        assert_eq!((bc.len(), bc.features()), (569, 30));
    }

    #[test]
    fn unknown_names_and_parameters_are_explained() {
        let none = BTreeMap::new();
        assert!(
            validate_builtin("mnist", &none)
                .unwrap_err()
                .contains("known: digits")
        );
        let p = BTreeMap::from([("nois".to_string(), 0.1)]);
        let e = validate_builtin("moons", &p).unwrap_err();
        assert!(
            e.contains("no parameter `nois`; it takes samples, noise"),
            "{e}"
        );
        let p = BTreeMap::from([("samples".to_string(), 0.5)]);
        assert!(
            validate_builtin("moons", &p)
                .unwrap_err()
                .contains("out of range")
        );
        let p = BTreeMap::from([("x".to_string(), 1.0)]);
        assert!(
            validate_builtin("digits", &p)
                .unwrap_err()
                .contains("takes no parameters")
        );
    }
}
