//! Reward functions. Each scores a batch of completions; a score is a number, `None` (the
//! function does not apply to that sample, as TRL's `None`) or an error (counted; the sample
//! gets nothing from that function and the run goes on).

use super::tasks::{Answer, Problem};
use std::io::Write;
use std::process::{Command, Stdio};

pub type Score = Result<Option<f64>, String>;

#[derive(Clone, Debug)]
pub enum RewardFn {
    /// 1 when the answer is right, else 0. Text answers: the completion (or what its last
    /// `<answer>…</answer>` holds), trimmed, equals the answer. Countdown, TinyZero's rule:
    /// 1 for a correct equation, 0.1 for an `<answer>` that is not, 0 without one.
    Accuracy,
    /// 1 when the completion matches the regular expression, else 0.
    Format(regex::Regex),
    /// A program: JSON Lines `{"prompt", "completion", "answer"}` on its standard input, one
    /// line per completion back — a number, or `null` for none; anything else is an error
    /// for that completion.
    Command(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct Reward {
    /// The name metrics use (`rewards/NAME/mean`).
    pub name: String,
    pub func: RewardFn,
    pub weight: f64,
}

pub const NAMES: &[&str] = &["accuracy", "format", "command"];

/// The format reward of a regular expression, or why it is not one.
pub fn format(pattern: &str) -> Result<RewardFn, String> {
    regex::Regex::new(pattern)
        .map(RewardFn::Format)
        .map_err(|e| format!("pattern {pattern:?}: {e}"))
}

/// What the last `<answer>…</answer>` of `text` holds.
fn tagged(text: &str) -> Option<&str> {
    let start = text.rfind("<answer>")? + "<answer>".len();
    let end = text[start..].find("</answer>")? + start;
    Some(text[start..end].trim())
}

impl Reward {
    pub fn score(&self, problems: &[&Problem], completions: &[String]) -> Vec<Score> {
        match &self.func {
            RewardFn::Accuracy => problems
                .iter()
                .zip(completions)
                .map(|(p, c)| Ok(Some(accuracy(p, c))))
                .collect(),
            RewardFn::Format(re) => completions
                .iter()
                .map(|c| Ok(Some(if re.is_match(c) { 1.0 } else { 0.0 })))
                .collect(),
            RewardFn::Command(argv) => command(argv, problems, completions),
        }
    }
}

/// The accuracy reward of one completion.
pub fn accuracy(p: &Problem, completion: &str) -> f64 {
    match &p.answer {
        Answer::Text(want) => {
            let got = tagged(completion).unwrap_or(completion.trim());
            if got == want.trim() { 1.0 } else { 0.0 }
        }
        Answer::Countdown { numbers, target } => {
            let Some(eq) = tagged(completion) else {
                return 0.0;
            };
            match equation(eq) {
                Some((value, mut used)) => {
                    let mut given = numbers.clone();
                    used.sort_unstable();
                    given.sort_unstable();
                    if used == given && (value - *target as f64).abs() < 1e-5 {
                        1.0
                    } else {
                        0.1
                    }
                }
                None => 0.1,
            }
        }
    }
}

/// Evaluates an equation of integers, + − × ÷ and parentheses; returns its value and the
/// numbers it uses, or `None` when it is not one (or divides by zero).
pub fn equation(text: &str) -> Option<(f64, Vec<i64>)> {
    struct P<'a> {
        s: &'a [u8],
        i: usize,
        used: Vec<i64>,
    }
    impl P<'_> {
        fn skip(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> Option<u8> {
            self.skip();
            self.s.get(self.i).copied()
        }
        fn expr(&mut self, depth: usize) -> Option<f64> {
            let mut v = self.term(depth)?;
            while let Some(op @ (b'+' | b'-')) = self.peek() {
                self.i += 1;
                let r = self.term(depth)?;
                v = if op == b'+' { v + r } else { v - r };
            }
            Some(v)
        }
        fn term(&mut self, depth: usize) -> Option<f64> {
            let mut v = self.atom(depth)?;
            while let Some(op @ (b'*' | b'/')) = self.peek() {
                self.i += 1;
                let r = self.atom(depth)?;
                if op == b'/' && r == 0.0 {
                    return None;
                }
                v = if op == b'*' { v * r } else { v / r };
            }
            Some(v)
        }
        fn atom(&mut self, depth: usize) -> Option<f64> {
            if depth > 64 {
                return None;
            }
            match self.peek()? {
                b'(' => {
                    self.i += 1;
                    let v = self.expr(depth + 1)?;
                    (self.peek()? == b')').then(|| self.i += 1)?;
                    Some(v)
                }
                c if c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    let n: i64 = std::str::from_utf8(&self.s[start..self.i])
                        .ok()?
                        .parse()
                        .ok()?;
                    self.used.push(n);
                    Some(n as f64)
                }
                _ => None,
            }
        }
    }
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
        used: Vec::new(),
    };
    let v = p.expr(0)?;
    (p.peek().is_none() && v.is_finite()).then_some((v, p.used))
}

fn command(argv: &[String], problems: &[&Problem], completions: &[String]) -> Vec<Score> {
    let fail = |why: String| vec![Err(why); completions.len()];
    let Some((prog, args)) = argv.split_first() else {
        return fail("the command is empty".into());
    };
    let mut child = match Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start {prog}: {e}")),
    };
    let mut input = String::new();
    for (p, c) in problems.iter().zip(completions) {
        let line =
            serde_json::json!({"prompt": p.prompt, "completion": c, "answer": p.answer_text()});
        input += &line.to_string();
        input.push('\n');
    }
    // Written from a thread so that a program that answers before reading all its input
    // cannot deadlock against a full pipe.
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return fail(format!("{prog}: {e}")),
    };
    let _ = writer.join();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return fail(format!("{prog} exited with {}: {}", out.status, err.trim()));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    (0..completions.len())
        .map(|i| match lines.get(i).map(|l| l.trim()) {
            None => Err(format!(
                "{prog} gave {} lines for {} completions",
                lines.len(),
                completions.len()
            )),
            Some("null") | Some("None") => Ok(None),
            Some(l) => l
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Some)
                .ok_or_else(|| format!("{prog} line {}: {l:?} is not a number", i + 1)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn countdown() -> Problem {
        Problem {
            prompt: "p".into(),
            answer: Answer::Countdown {
                numbers: vec![3, 7, 5],
                target: 26,
            },
        }
    }

    #[test]
    fn countdown_follows_tinyzeros_rule() {
        let p = countdown();
        assert_eq!(accuracy(&p, "so <answer> 3 * 7 + 5 </answer>"), 1.0);
        assert_eq!(
            accuracy(&p, "<answer>(7 - 5) * 13</answer>"),
            0.1,
            "13 is not given"
        );
        assert_eq!(
            accuracy(&p, "<answer>3 * 7 + 5 + 5</answer>"),
            0.1,
            "5 used twice"
        );
        assert_eq!(accuracy(&p, "<answer>7 / (5 - 5) + 3</answer>"), 0.1, "÷ 0");
        assert_eq!(accuracy(&p, "3 * 7 + 5"), 0.0, "no tags");
        assert_eq!(equation("(1 + 2) / 3"), Some((1.0, vec![1, 2, 3])));
        assert_eq!(equation("1 +"), None);
    }

    #[test]
    fn text_answers_match_exactly_after_trimming() {
        let p = Problem {
            prompt: "1+1".into(),
            answer: Answer::Text("2".into()),
        };
        assert_eq!(accuracy(&p, " 2\n"), 1.0);
        assert_eq!(accuracy(&p, "22"), 0.0);
        assert_eq!(accuracy(&p, "I think <answer>2</answer>"), 1.0);
    }

    #[test]
    fn a_command_that_fails_on_one_completion_fails_only_that_one() {
        let script = "while read l; do case \"$l\" in *boom*) echo oops;; *none*) echo null;; *) echo 0.5;; esac; done";
        let r = Reward {
            name: "cmd".into(),
            func: RewardFn::Command(vec!["sh".into(), "-c".into(), script.into()]),
            weight: 1.0,
        };
        let p = countdown();
        let scores = r.score(&[&p, &p, &p], &["ok".into(), "boom".into(), "none".into()]);
        assert_eq!(scores[0], Ok(Some(0.5)));
        assert!(
            scores[1]
                .as_ref()
                .unwrap_err()
                .contains("\"oops\" is not a number")
        );
        assert_eq!(scores[2], Ok(None));
        let missing = Reward {
            func: RewardFn::Command(vec!["/no/such/program".into()]),
            ..r
        };
        assert!(
            missing.score(&[&p], &["x".into()])[0]
                .as_ref()
                .unwrap_err()
                .contains("cannot start")
        );
    }
}
