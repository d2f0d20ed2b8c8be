//! Text for language-model training: raw text (every token is learned) or prompt/completion
//! pairs (only the completion is), from `.txt` or JSON Lines files, or generated arithmetic.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

/// One training example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Read but not learned (the question); `None` for raw text.
    pub prompt: Option<String>,
    /// Learned: the completion, or the whole text.
    pub text: String,
}

impl Example {
    pub fn text(text: &str) -> Example {
        Example {
            prompt: None,
            text: text.into(),
        }
    }

    pub fn pair(prompt: &str, completion: &str) -> Example {
        Example {
            prompt: Some(prompt.into()),
            text: completion.into(),
        }
    }
}

/// A generated text corpus: its name, what it is, and its parameters (name, default, what).
pub struct TextBuiltin {
    pub name: &'static str,
    pub description: &'static str,
    pub params: &'static [(&'static str, f64, &'static str)],
}

/// The builtin corpora.
pub const BUILTINS: &[TextBuiltin] = &[TextBuiltin {
    name: "arithmetic",
    description: "sums a+b as prompt/completion pairs, each problem once (text, for kind = \"pretrain\")",
    params: &[
        ("digits", 2.0, "operands below 10^digits"),
        ("problems", 0.0, "how many; 0: all of them"),
    ],
}];

/// Whether `name` is a builtin text corpus.
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|b| b.name == name)
}

impl TextBuiltin {
    /// The builtin of `list` named `name`, or the names it could have been.
    pub fn find<'a>(list: &'a [TextBuiltin], name: &str) -> Result<&'a TextBuiltin, String> {
        list.iter().find(|b| b.name == name).ok_or_else(|| {
            list.iter()
                .map(|b| format!("builtin:{}", b.name))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// Checks that every parameter is one of this builtin's and a whole number that
    /// `in_range` accepts.
    pub fn check(
        &self,
        params: &BTreeMap<String, f64>,
        in_range: fn(&str, f64) -> bool,
    ) -> Result<(), String> {
        for (k, v) in params {
            if !self.params.iter().any(|(p, ..)| p == k) {
                let names: Vec<&str> = self.params.iter().map(|(p, ..)| *p).collect();
                return Err(format!(
                    "builtin:{} has no parameter `{k}`; it takes {}",
                    self.name,
                    names.join(", ")
                ));
            }
            if v.fract() != 0.0 || !in_range(k, *v) {
                return Err(format!(
                    "builtin:{}: `{k}` = {v} is out of range",
                    self.name
                ));
            }
        }
        Ok(())
    }
}

/// Checks a builtin corpus's name and parameters (for config validation).
pub fn validate_builtin(name: &str, params: &BTreeMap<String, f64>) -> Result<(), String> {
    let b = TextBuiltin::find(BUILTINS, name).map_err(|names| {
        format!(
            "no builtin text corpus `{name}`; a language model trains on {names} or on a .txt \
             or .jsonl file"
        )
    })?;
    b.check(params, |k, v| match k {
        "digits" => (1.0..=6.0).contains(&v),
        _ => (0.0..=1e7).contains(&v),
    })?;
    if name == "arithmetic" {
        let p = Arithmetic::from_params(params);
        if p.problems > p.space() {
            return Err(format!(
                "builtin:arithmetic: `problems` = {} is more than the {} distinct sums of \
                 {}-digit numbers",
                p.problems,
                p.space(),
                p.digits
            ));
        }
    }
    Ok(())
}

/// Generates a builtin corpus, drawn from `seed`.
pub fn builtin(
    name: &str,
    params: &BTreeMap<String, f64>,
    seed: u64,
) -> Result<Vec<Example>, String> {
    validate_builtin(name, params)?;
    Ok(Arithmetic::from_params(params).generate(seed))
}

/// Sums `a+b` of numbers below 10^digits, each problem once: a held-out split holds problems
/// never seen in training. The prompt is `a+b`, the completion the sum's digits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arithmetic {
    pub digits: u32,
    /// How many distinct problems (0: all of them).
    pub problems: u64,
}

impl Arithmetic {
    fn from_params(params: &BTreeMap<String, f64>) -> Arithmetic {
        let get = |k: &str, d: f64| params.get(k).copied().unwrap_or(d);
        let digits = get("digits", 2.0) as u32;
        let mut a = Arithmetic {
            digits,
            problems: get("problems", 0.0) as u64,
        };
        if a.problems == 0 {
            a.problems = a.space().min(100_000);
        }
        a
    }

    fn space(&self) -> u64 {
        10u64.pow(self.digits).pow(2)
    }

    pub fn generate(&self, seed: u64) -> Vec<Example> {
        let n = 10u64.pow(self.digits);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xA217_0000_0000_0001);
        let codes: Vec<u64> = if self.problems * 4 >= self.space() {
            let mut all: Vec<u64> = (0..self.space()).collect();
            all.shuffle(&mut rng);
            all.truncate(self.problems as usize);
            all
        } else {
            // Rejection sampling: the space is much larger than what is drawn.
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            while (out.len() as u64) < self.problems {
                let c = rng.random_range(0..self.space());
                if seen.insert(c) {
                    out.push(c);
                }
            }
            out
        };
        codes
            .into_iter()
            .map(|c| {
                let (a, b) = (c / n, c % n);
                Example::pair(&format!("{a}+{b}"), &(a + b).to_string())
            })
            .collect()
    }
}

/// Reads a corpus file, or every `.txt`/`.jsonl` file of a folder in name order.
/// `.txt`: each paragraph (lines up to a blank line) is one text. `.jsonl`: one object per
/// line with `text`, or `prompt` and `completion`.
pub fn load(path: &Path) -> Result<Vec<Example>, String> {
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(extension(p).as_str(), "txt" | "jsonl"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "{}: no .txt or .jsonl files to train a language model on",
                path.display()
            ));
        }
        let mut all = Vec::new();
        for f in files {
            all.extend(load(&f)?);
        }
        return Ok(all);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let examples = match extension(path).as_str() {
        "txt" | "md" => paragraphs(&text),
        "jsonl" => json_lines(&text, path)?,
        other => {
            return Err(format!(
                "{}: a language model trains on .txt or .jsonl files, not .{other}",
                path.display()
            ));
        }
    };
    if examples.is_empty() {
        return Err(format!("{}: no text in it", path.display()));
    }
    Ok(examples)
}

fn extension(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}

fn paragraphs(text: &str) -> Vec<Example> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Example::text)
        .collect()
}

/// Each non-blank line of a JSON Lines `text` read from `path`, parsed, with its place
/// (`FILE:LINE`) for messages.
pub(crate) fn json_objects(
    text: &str,
    path: &Path,
) -> impl Iterator<Item = Result<(String, serde_json::Value), String>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(move |(i, line)| {
            let at = format!("{}:{}", path.display(), i + 1);
            serde_json::from_str(line)
                .map(|v| (at.clone(), v))
                .map_err(|e| format!("{at}: not JSON: {e}"))
        })
}

fn json_lines(text: &str, path: &Path) -> Result<Vec<Example>, String> {
    let mut out = Vec::new();
    for item in json_objects(text, path) {
        let (at, v) = item?;
        let field = |k: &str| -> Result<Option<&str>, String> {
            match v.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("{at}: `{k}` must be a string")),
            }
        };
        out.push(
            match (field("text")?, field("prompt")?, field("completion")?) {
                (Some(t), None, None) => Example::text(t),
                (None, Some(p), Some(c)) => Example::pair(p, c),
                _ => {
                    return Err(format!(
                        "{at}: expected {{\"text\": …}} or {{\"prompt\": …, \"completion\": …}}"
                    ));
                }
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_problems_are_distinct_and_correct() {
        let params = BTreeMap::from([("digits".to_string(), 2.0), ("problems".into(), 500.0)]);
        let ex = builtin("arithmetic", &params, 3).unwrap();
        assert_eq!(ex.len(), 500);
        let prompts: std::collections::HashSet<_> = ex.iter().map(|e| e.prompt.clone()).collect();
        assert_eq!(prompts.len(), 500);
        for e in &ex {
            let p = e.prompt.as_deref().unwrap();
            let (a, b) = p.split_once('+').unwrap();
            let sum: u64 = a.parse::<u64>().unwrap() + b.parse::<u64>().unwrap();
            assert_eq!(e.text, sum.to_string());
        }
        assert_eq!(builtin("arithmetic", &params, 3).unwrap(), ex, "seeded");
        let all = builtin("arithmetic", &BTreeMap::from([("digits".into(), 1.0)]), 0).unwrap();
        assert_eq!(all.len(), 100);
        let too_many = BTreeMap::from([("digits".to_string(), 1.0), ("problems".into(), 101.0)]);
        let e = validate_builtin("arithmetic", &too_many).unwrap_err();
        assert!(e.contains("more than the 100 distinct"), "{e}");
        assert!(
            validate_builtin("poems", &BTreeMap::new())
                .unwrap_err()
                .contains("builtin:arithmetic")
        );
    }

    #[test]
    fn files_are_read_as_paragraphs_or_json_lines_with_the_bad_line_named() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("a.txt");
        std::fs::write(&txt, "one\ntwo\n\n\nthree\n").unwrap();
        assert_eq!(
            load(&txt).unwrap(),
            vec![Example::text("one\ntwo"), Example::text("three")]
        );
        let jl = dir.path().join("b.jsonl");
        std::fs::write(
            &jl,
            "{\"text\": \"x\"}\n\n{\"prompt\": \"p\", \"completion\": \"c\"}\n",
        )
        .unwrap();
        assert_eq!(
            load(&jl).unwrap(),
            vec![Example::text("x"), Example::pair("p", "c")]
        );
        assert_eq!(load(dir.path()).unwrap().len(), 4);
        std::fs::write(&jl, "{\"text\": \"x\"}\n{\"prompt\": \"p\"}\n").unwrap();
        let e = load(&jl).unwrap_err();
        assert!(e.contains("b.jsonl:2: expected"), "{e}");
        std::fs::write(&jl, "{\"text\": 3}\n").unwrap();
        assert!(
            load(&jl)
                .unwrap_err()
                .contains("b.jsonl:1: `text` must be a string")
        );
        std::fs::write(&jl, "nope\n").unwrap();
        assert!(load(&jl).unwrap_err().contains("b.jsonl:1: not JSON"));
        let csv = dir.path().join("c.csv");
        std::fs::write(&csv, "a,b\n").unwrap();
        assert!(load(&csv).unwrap_err().contains("not .csv"));
    }
}
