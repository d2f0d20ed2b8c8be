//! `[sweep]`: many runs of one experiment, each with some keys set otherwise.
//!
//! ```toml
//! [sweep]
//! metric = "eval_loss"      # what ranks the members: eval_loss, eval_accuracy or loss
//! summary = "last"          # its last value, or "best": the best evaluation of the run
//! count = 4                 # draws of [sweep.random]
//! [sweep.grid]              # every combination of these lists
//! "optim.lr" = [1e-3, 3e-3]
//! seed = [0, 1]
//! [sweep.random]            # `count` draws, each crossed with the grid
//! "optim.weight_decay" = { min = 0.0, max = 0.1 }
//! "model.hidden" = [[32], [64]]                    # a list: one of its values
//! ```
//!
//! A member is the experiment with its [`Overrides`] applied ([`apply`]): the experiment is
//! serialised to a TOML table, each dotted key is set, and the table is read back through the
//! same schema and rules as the file, so a key that does not exist or a value of the wrong
//! type is refused as the file itself would refuse it — placed at the sweep's entry.

use super::{ConfigError, Experiment, locate};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// More members than this are refused outright: a typo in a grid, not a plan.
pub const HARD_CAP: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The final value that ranks the members.
    #[serde(default = "default_metric")]
    pub metric: String,
    /// `min` or `max`; by default `max` for accuracy, `min` for losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
    /// Which of the metric's values ranks a member: its last, or its best evaluation.
    #[serde(default)]
    pub summary: Summary,
    /// Draws of the random keys (each crossed with the grid).
    #[serde(default)]
    pub count: usize,
    /// The seed of the random draws (not of the runs: sweep `seed` for that).
    #[serde(default)]
    pub seed: u64,
    /// Sweeps larger than this ask to be confirmed (`descent sweep --yes`, or the TUI's dialog).
    #[serde(default = "default_max_members")]
    pub max_members: usize,
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    pub random: BTreeMap<String, toml::Value>,
}

fn default_metric() -> String {
    "eval_loss".into()
}
fn default_max_members() -> usize {
    64
}

/// Which value of a member's metric ranks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Summary {
    /// The value at the end (or now, for a member still running), as `status.json` has it.
    #[default]
    Last,
    /// The best evaluation so far (lowest eval loss, highest eval accuracy): a member that
    /// overfits late is ranked by its best point, as early stopping would keep it.
    Best,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Min,
    Max,
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Goal::Min => "lower is better",
            Goal::Max => "higher is better",
        })
    }
}

/// The metrics a sweep can rank by: the final values every run's status records.
pub const METRICS: &[&str] = &["eval_loss", "eval_accuracy", "loss"];

impl SweepConfig {
    pub fn goal(&self) -> Goal {
        self.goal.unwrap_or(if self.metric.contains("accuracy") {
            Goal::Max
        } else {
            Goal::Min
        })
    }

    /// How many members the sweep has, without making them.
    pub fn size(&self) -> usize {
        let grid = self
            .grid
            .values()
            .fold(1usize, |n, v| n.saturating_mul(v.len()));
        let draws = if self.random.is_empty() {
            1
        } else {
            self.count
        };
        grid.saturating_mul(draws)
    }
}

/// What one member sets: dotted keys and their values, in key order.
pub type Overrides = BTreeMap<String, toml::Value>;

/// One way to draw a random key.
#[derive(Clone, Debug, PartialEq)]
enum Draw {
    Choice(Vec<toml::Value>),
    /// Uniform in [min, max] (log-uniform with `log`); integers when both ends are.
    Range {
        min: f64,
        max: f64,
        log: bool,
        int: bool,
    },
}

impl Draw {
    fn parse(v: &toml::Value) -> Result<Draw, String> {
        if let toml::Value::Array(values) = v {
            return if values.is_empty() {
                Err("an empty list leaves nothing to draw".into())
            } else {
                Ok(Draw::Choice(values.clone()))
            };
        }
        let toml::Value::Table(t) = v else {
            return Err("expected a list of values or { min = …, max = …, log = … }".into());
        };
        if let Some(k) = t
            .keys()
            .find(|k| !["min", "max", "log"].contains(&k.as_str()))
        {
            return Err(format!("unknown field `{k}`; expected min, max and log"));
        }
        let end = |k: &str| match t.get(k) {
            Some(toml::Value::Integer(i)) => Ok((*i as f64, true)),
            Some(toml::Value::Float(f)) => Ok((*f, false)),
            Some(_) => Err(format!("`{k}` must be a number")),
            None => Err(format!("missing `{k}`")),
        };
        let ((min, int_lo), (max, int_hi)) = (end("min")?, end("max")?);
        let log = match t.get("log") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => return Err("`log` must be true or false".into()),
        };
        if !(min.is_finite() && max.is_finite() && min <= max) {
            return Err("needs finite min ≤ max".into());
        }
        if log && min <= 0.0 {
            return Err("a log-uniform range needs min > 0".into());
        }
        Ok(Draw::Range {
            min,
            max,
            log,
            int: int_lo && int_hi,
        })
    }

    fn sample(&self, rng: &mut impl Rng) -> toml::Value {
        match self {
            Draw::Choice(values) => values[rng.random_range(0..values.len())].clone(),
            Draw::Range { min, max, int, .. } if *int => {
                toml::Value::Integer(rng.random_range(*min as i64..=*max as i64))
            }
            Draw::Range { min, max, log, .. } => {
                let u: f64 = rng.random();
                let x = if *log {
                    (min.ln() + u * (max.ln() - min.ln())).exp()
                } else {
                    min + u * (max - min)
                };
                toml::Value::Float(x)
            }
        }
    }

    /// The values that stand for every value it can draw, for checking types.
    fn examples(&self) -> Vec<toml::Value> {
        match self {
            Draw::Choice(values) => values.clone(),
            Draw::Range { min, max, int, .. } if *int => vec![
                toml::Value::Integer(*min as i64),
                toml::Value::Integer(*max as i64),
            ],
            Draw::Range { min, max, .. } => {
                vec![toml::Value::Float(*min), toml::Value::Float(*max)]
            }
        }
    }
}

/// The experiment one member runs: `base` without its sweep, with `overrides` set.
pub fn apply(base: &Experiment, overrides: &Overrides) -> Result<Experiment, String> {
    let mut table = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    table.remove("sweep");
    for (key, value) in overrides {
        set(&mut table, key, value.clone())?;
    }
    let exp: Experiment = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())?;
    match exp.validate().into_iter().next() {
        Some(v) => Err(format!("`{}`: {}", v.path.join("."), v.message)),
        None => Ok(exp),
    }
}

fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{key}` is not a dotted key like optim.lr"));
    }
    let (last, path) = parts.split_last().expect("split gives one part at least");
    let mut t = table;
    for (i, p) in path.iter().enumerate() {
        let entry = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => {
                return Err(format!(
                    "`{}` is a value, not a table",
                    parts[..=i].join(".")
                ));
            }
        };
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// Every member's overrides, grid order within each random draw.
pub fn expand(sweep: &SweepConfig) -> Result<Vec<Overrides>, String> {
    let size = sweep.size();
    if size > HARD_CAP {
        return Err(format!(
            "the sweep has {size} members; more than {HARD_CAP} is refused"
        ));
    }
    let draws: Vec<(String, Draw)> = sweep
        .random
        .iter()
        .map(|(k, v)| Draw::parse(v).map(|d| (k.clone(), d)))
        .collect::<Result<_, _>>()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sweep.seed);
    let draw_count = if draws.is_empty() { 1 } else { sweep.count };
    let mut out = Vec::with_capacity(size);
    for _ in 0..draw_count {
        let drawn: Overrides = draws
            .iter()
            .map(|(k, d)| (k.clone(), d.sample(&mut rng)))
            .collect();
        let mut combos = vec![drawn];
        for (key, values) in &sweep.grid {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(key.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        out.extend(combos);
    }
    Ok(out)
}

/// `optim.lr=0.003 seed=1`: a member's overrides in one line.
pub fn describe(overrides: &Overrides) -> String {
    overrides
        .iter()
        .map(|(k, v)| format!("{k}={}", inline(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as TOML writes it inline.
pub fn inline(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The sweep's own rules, placed in the file: every key exists and takes every value it
/// may be given, the lists are not empty, the count fits the keys, and every member is a
/// valid experiment.
pub(super) fn check(exp: &Experiment, file: &Path, text: &str) -> Vec<ConfigError> {
    let Some(sweep) = &exp.sweep else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    let at = |errors: &mut Vec<ConfigError>, path: &[&str], message: String| {
        let offset = locate::span_of(text, path).map_or(0, |s| s.start);
        errors.push(ConfigError::at(
            file,
            text,
            offset,
            format!("`{}`: {message}", path.join(".")),
        ));
    };
    if !METRICS.contains(&sweep.metric.as_str()) {
        at(
            &mut errors,
            &["sweep", "metric"],
            format!(
                "unknown metric {:?}; a sweep ranks by {}",
                sweep.metric,
                METRICS.join(", ")
            ),
        );
    }
    if sweep.summary == Summary::Best && !sweep.metric.starts_with("eval_") {
        at(
            &mut errors,
            &["sweep", "summary"],
            format!(
                "\"best\" ranks by the best evaluation: it takes eval_loss or eval_accuracy, \
                 not {:?}",
                sweep.metric
            ),
        );
    }
    if sweep.grid.is_empty() && sweep.random.is_empty() {
        at(
            &mut errors,
            &["sweep"],
            "the sweep sets no keys; give [sweep.grid] lists or [sweep.random] draws".into(),
        );
    }
    if !sweep.random.is_empty() && sweep.count == 0 {
        at(
            &mut errors,
            &["sweep", "count"],
            "[sweep.random] needs count = N, the number of draws".into(),
        );
    }
    if sweep.random.is_empty() && sweep.count > 0 {
        at(
            &mut errors,
            &["sweep", "count"],
            "count is the number of [sweep.random] draws, and there are none".into(),
        );
    }
    let mut per_key: Vec<(&str, &str, Vec<toml::Value>)> = Vec::new();
    for (key, values) in &sweep.grid {
        if values.is_empty() {
            at(
                &mut errors,
                &["sweep", "grid", key],
                "an empty list leaves nothing to sweep".into(),
            );
        }
        per_key.push(("grid", key, values.clone()));
    }
    for (key, v) in &sweep.random {
        if sweep.grid.contains_key(key) {
            at(
                &mut errors,
                &["sweep", "random", key],
                "is also in [sweep.grid]; sweep a key one way".into(),
            );
        }
        match Draw::parse(v) {
            Ok(d) => per_key.push(("random", key, d.examples())),
            Err(e) => at(&mut errors, &["sweep", "random", key], e),
        }
    }
    let mut bad_key = false;
    for (table, key, values) in &per_key {
        let refused = if ["name", "kind"].contains(key) || key.starts_with("sweep") {
            Some(format!(
                "`{key}` cannot be swept: the members are runs of one experiment"
            ))
        } else {
            values.iter().enumerate().find_map(|(i, v)| {
                let one = Overrides::from([(key.to_string(), v.clone())]);
                apply(exp, &one).err().map(|e| match values.len() {
                    1 => e,
                    _ => format!("value {} ({}): {e}", i + 1, inline(v)),
                })
            })
        };
        if let Some(e) = refused {
            bad_key = true;
            at(&mut errors, &["sweep", table, key], e);
        }
    }
    let size = sweep.size();
    if size > HARD_CAP {
        at(
            &mut errors,
            &["sweep"],
            format!("the sweep has {size} members; more than {HARD_CAP} is refused"),
        );
    } else if !bad_key && errors.is_empty() {
        // Keys fine one at a time can still clash together (say, a unet's channels with
        // an mlp arch): every member must be an experiment the file could have been.
        match expand(sweep) {
            Ok(members) => {
                if let Some((i, e)) = members
                    .iter()
                    .enumerate()
                    .find_map(|(i, m)| apply(exp, m).err().map(|e| (i, e)))
                {
                    at(
                        &mut errors,
                        &["sweep"],
                        format!("member {} ({}): {e}", i + 1, describe(&members[i])),
                    );
                }
            }
            Err(e) => at(&mut errors, &["sweep"], e),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
kind = "supervised"
[data]
source = "builtin:moons"
[model]
arch = "mlp"
hidden = [16]
[train]
steps = 10
"#;

    fn parse(sweep: &str) -> Result<Experiment, Vec<ConfigError>> {
        Experiment::parse(Path::new("e.toml"), &format!("{BASE}{sweep}"))
    }

    fn values(members: &[Overrides], key: &str) -> Vec<String> {
        members.iter().map(|m| inline(&m[key])).collect()
    }

    #[test]
    fn a_grid_is_every_combination_in_key_order() {
        let e = parse("[sweep.grid]\n\"optim.lr\" = [0.1, 0.01]\nseed = [1, 2, 3]\n").unwrap();
        let s = e.sweep.as_ref().unwrap();
        assert_eq!(s.size(), 6);
        let m = expand(s).unwrap();
        assert_eq!(m.len(), 6);
        assert_eq!(
            values(&m, "optim.lr"),
            ["0.1", "0.1", "0.1", "0.01", "0.01", "0.01"]
        );
        assert_eq!(values(&m, "seed"), ["1", "2", "3", "1", "2", "3"]);
        assert_eq!(describe(&m[4]), "optim.lr=0.01 seed=2");
        let member = apply(&e, &m[4]).unwrap();
        assert_eq!(member.optim.lr, 0.01);
        assert_eq!(member.seed, 2);
        assert!(member.sweep.is_none(), "a member is an ordinary run");
        assert_eq!(member.model.hidden, [16], "other keys are the experiment's");
    }

    #[test]
    fn random_draws_repeat_with_their_seed_and_cross_the_grid() {
        let text = "[sweep]\ncount = 5\nseed = 7\n[sweep.grid]\nseed = [0, 1]\n\
                    [sweep.random]\n\"optim.lr\" = { min = 1e-4, max = 1e-1, log = true }\n\
                    \"model.hidden\" = [[8], [32]]\n\"data.batch_size\" = { min = 16, max = 64 }\n";
        let e = parse(text).unwrap();
        let s = e.sweep.as_ref().unwrap();
        let a = expand(s).unwrap();
        assert_eq!(a.len(), 10);
        assert_eq!(
            a,
            expand(s).unwrap(),
            "the same seed draws the same members"
        );
        for pair in a.chunks(2) {
            // Each draw runs once per grid seed.
            assert_eq!(pair[0]["optim.lr"], pair[1]["optim.lr"]);
            assert_eq!(values(pair, "seed"), ["0", "1"]);
        }
        for m in &a {
            let lr = m["optim.lr"].as_float().unwrap();
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            let b = m["data.batch_size"].as_integer().unwrap();
            assert!((16..=64).contains(&b), "{b}");
            apply(&e, m).unwrap();
        }
        let distinct: std::collections::BTreeSet<String> =
            values(&a, "optim.lr").into_iter().collect();
        assert_eq!(distinct.len(), 5, "five draws, five learning rates");
        let other = SweepConfig {
            seed: 8,
            ..s.clone()
        };
        assert_ne!(expand(&other).unwrap(), a, "another seed draws others");
    }

    fn only_error(sweep: &str) -> ConfigError {
        let e = parse(sweep).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn an_unknown_key_is_placed_at_its_entry() {
        let e = only_error("[sweep.grid]\n\"optim.lrr\" = [0.1]\n");
        assert_eq!(e.position, Some((11, 15)), "{e}");
        assert!(
            e.message.contains("`sweep.grid.optim.lrr`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("unknown field `lrr`"), "{}", e.message);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_with_its_place_in_the_list() {
        let e = only_error("[sweep.grid]\n\"optim.lr\" = [0.1, \"big\"]\n");
        assert_eq!(e.position.unwrap().0, 11);
        assert!(e.message.contains("value 2 (\"big\")"), "{}", e.message);
        assert!(e.message.contains("expected f64"), "{}", e.message);
        // A value the schema's rules refuse, not only its types.
        let e = only_error("[sweep.grid]\n\"data.val_fraction\" = [0.2, 1.5]\n");
        assert!(e.message.contains("must be in [0, 1)"), "{}", e.message);
    }

    #[test]
    fn best_is_for_evaluations_only() {
        let e = only_error(
            "[sweep]\nmetric = \"loss\"\nsummary = \"best\"\n[sweep.grid]\nseed = [1]\n",
        );
        assert!(e.message.contains("`sweep.summary`"), "{}", e.message);
        assert!(
            e.message.contains("eval_loss or eval_accuracy"),
            "{}",
            e.message
        );
        let e = only_error("[sweep]\nsummary = \"max\"\n[sweep.grid]\nseed = [1]\n");
        assert!(e.message.contains("unknown variant `max`"), "{}", e.message);
    }

    #[test]
    fn empty_grids_and_missing_counts_are_refused() {
        let e = only_error("[sweep.grid]\n\"optim.lr\" = []\n");
        assert!(e.message.contains("empty list"), "{}", e.message);
        let e = only_error("[sweep]\nmetric = \"eval_loss\"\n");
        assert!(e.message.contains("sets no keys"), "{}", e.message);
        let e = only_error("[sweep.random]\n\"optim.lr\" = { min = 0.1, max = 0.2 }\n");
        assert!(e.message.contains("needs count"), "{}", e.message);
        let e = only_error(
            "[sweep]\ncount = 3\n[sweep.random]\n\"optim.lr\" = { min = 0.0, max = 1.0, log = true }\n",
        );
        assert!(e.message.contains("min > 0"), "{}", e.message);
        let e = only_error("[sweep]\nmetric = \"reward\"\n[sweep.grid]\nseed = [1]\n");
        assert!(e.message.contains("unknown metric"), "{}", e.message);
        let e = only_error("[sweep.grid]\nname = [\"a\", \"b\"]\n");
        assert!(e.message.contains("cannot be swept"), "{}", e.message);
    }

    #[test]
    fn thousands_of_members_are_counted_not_made_and_too_many_refused() {
        let grid = |n: usize| {
            format!(
                "[sweep.grid]\nseed = [{}]\n\"optim.lr\" = [{}]\n",
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
                (1..=n)
                    .map(|i| format!("{i}e-4"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let e = parse(&grid(60)).unwrap();
        assert_eq!(e.sweep.as_ref().unwrap().size(), 3600);
        let e = only_error(&grid(101));
        assert!(e.message.contains("10201 members"), "{}", e.message);
    }

    #[test]
    fn keys_that_clash_together_name_the_member() {
        // Each is fine alone; a path source with builtin params is not.
        let e = only_error(
            "[sweep.grid]\n\"data.source\" = [\"builtin:moons\", \"imgs\"]\n\"data.params.samples\" = [200.0]\n",
        );
        assert!(e.message.contains("member 2"), "{}", e.message);
        assert!(
            e.message.contains("only builtin datasets take params"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_value_inside_a_scalar_is_refused() {
        let e = only_error("[sweep.grid]\n\"optim.lr.x\" = [1]\n");
        assert!(e.message.contains("`optim.lr` is a value"), "{}", e.message);
    }
}
