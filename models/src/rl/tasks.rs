//! Tasks with a verifiable answer for GRPO: generated arithmetic (the demo model's sums),
//! generated countdown (reach a target with the given numbers, each used once), or a JSON
//! Lines file of `{"prompt", "answer"}`.

use crate::lm::corpus::TextBuiltin;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

/// What a completion is checked against.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// The exact text (trimmed), e.g. a sum's digits.
    Text(String),
    /// An equation over `numbers`, each used once, that equals `target`.
    Countdown { numbers: Vec<i64>, target: i64 },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub prompt: String,
    pub answer: Answer,
}

impl Problem {
    /// The answer as a line of text (for logs and the rollout viewer).
    pub fn answer_text(&self) -> String {
        match &self.answer {
            Answer::Text(t) => t.clone(),
            Answer::Countdown { numbers, target } => format!("{target} from {numbers:?}"),
        }
    }
}

/// The builtin tasks.
pub const BUILTINS: &[TextBuiltin] = &[
    TextBuiltin {
        name: "arithmetic",
        description: "sums a+b answered with their digits (the prompts of the pretraining corpus)",
        params: &[
            ("digits", 2.0, "operands below 10^digits"),
            ("problems", 0.0, "how many; 0: all of them"),
        ],
    },
    TextBuiltin {
        name: "countdown",
        description: "reach a target from the given numbers with + − × ÷, each number once; the \
                      answer in <answer></answer>",
        params: &[
            ("numbers", 3.0, "numbers per problem (2 to 6)"),
            ("max", 20.0, "the largest number drawn"),
            ("problems", 1000.0, "how many"),
        ],
    },
];

/// Checks a builtin task's name and parameters (for config validation).
pub fn validate_builtin(name: &str, params: &BTreeMap<String, f64>) -> Result<(), String> {
    let b = TextBuiltin::find(BUILTINS, name).map_err(|names| {
        format!(
            "no builtin task `{name}`; GRPO trains on {names} or a .jsonl file of \
             {{\"prompt\", \"answer\"}}"
        )
    })?;
    b.check(params, |k, v| match k {
        "digits" => (1.0..=6.0).contains(&v),
        "numbers" => (2.0..=6.0).contains(&v),
        "max" => (1.0..=1000.0).contains(&v),
        _ => (0.0..=1e7).contains(&v),
    })
}

/// Generates a builtin task's problems from `seed`.
pub fn builtin(
    name: &str,
    params: &BTreeMap<String, f64>,
    seed: u64,
) -> Result<Vec<Problem>, String> {
    validate_builtin(name, params)?;
    let get = |k: &str, d: f64| params.get(k).copied().unwrap_or(d);
    if name == "arithmetic" {
        // The same corpus, from the same seed, as a pretraining experiment generates: with
        // the same seed and val_fraction its held-out problems are the pretraining's.
        return Ok(super::super::lm::corpus::builtin(name, params, seed)?
            .into_iter()
            .map(|e| Problem {
                prompt: e.prompt.unwrap_or_default(),
                answer: Answer::Text(e.text),
            })
            .collect());
    }
    Ok(countdown(
        get("numbers", 3.0) as usize,
        get("max", 20.0) as i64,
        get("problems", 1000.0) as usize,
        seed,
    ))
}

/// Countdown problems: each target is made from its numbers by a random expression (so every
/// problem has a solution), a positive integer with exact divisions only.
fn countdown(k: usize, max: i64, n: usize, seed: u64) -> Vec<Problem> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xC0DE_0000_0000_0002);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let numbers: Vec<i64> = (0..k).map(|_| rng.random_range(1..=max)).collect();
        let mut order = numbers.clone();
        order.shuffle(&mut rng);
        let mut value = order[0];
        for &x in &order[1..] {
            value = match rng.random_range(0..4) {
                0 => value + x,
                1 => value - x,
                2 => value * x,
                _ if value % x == 0 => value / x,
                _ => value + x,
            };
        }
        if !(1..=1000).contains(&value) {
            continue;
        }
        out.push(Problem {
            prompt: format!(
                "Using the numbers {numbers:?}, create an equation that equals {value}. You can \
                 use + - * / and each number once. Give the equation in <answer> </answer> \
                 tags, for example <answer> (1 + 2) / 3 </answer>."
            ),
            answer: Answer::Countdown {
                numbers,
                target: value,
            },
        });
    }
    out
}

/// Reads a JSON Lines file of `{"prompt": …, "answer": …}` (answers may be strings or
/// numbers); a bad line is named by file and line.
pub fn load(path: &Path) -> Result<Vec<Problem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for item in crate::lm::corpus::json_objects(&text, path) {
        let (at, v) = item?;
        let prompt = v
            .get("prompt")
            .and_then(|p| p.as_str())
            .ok_or_else(|| format!("{at}: needs \"prompt\" (a string)"))?;
        let answer = match v.get("answer") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(n @ serde_json::Value::Number(_)) => n.to_string(),
            _ => return Err(format!("{at}: needs \"answer\" (a string or a number)")),
        };
        out.push(Problem {
            prompt: prompt.into(),
            answer: Answer::Text(answer),
        });
    }
    if out.is_empty() {
        return Err(format!("{}: no problems in the file", path.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_targets_are_reachable_and_arithmetic_matches_the_corpus() {
        let p = builtin("countdown", &BTreeMap::new(), 3).unwrap();
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(|p| matches!(&p.answer,
            Answer::Countdown { numbers, target } if numbers.len() == 3 && (1..=1000).contains(target))));
        let a = builtin("arithmetic", &BTreeMap::new(), 0).unwrap();
        let c = crate::lm::corpus::builtin("arithmetic", &BTreeMap::new(), 0).unwrap();
        assert_eq!(a[7].prompt, c[7].prompt.clone().unwrap());
        assert_eq!(a[7].answer, Answer::Text(c[7].text.clone()));
    }

    #[test]
    fn a_bad_jsonl_line_is_named_by_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.jsonl");
        std::fs::write(
            &f,
            "{\"prompt\":\"1+1\",\"answer\":2}\n\n{\"prompt\":\"x\"}\n",
        )
        .unwrap();
        let e = load(&f).unwrap_err();
        assert!(
            e.ends_with("t.jsonl:3: needs \"answer\" (a string or a number)"),
            "{e}"
        );
        std::fs::write(&f, "{\"prompt\":\"1+1\",\"answer\":2}\n").unwrap();
        assert_eq!(load(&f).unwrap()[0].answer, Answer::Text("2".into()));
    }
}
