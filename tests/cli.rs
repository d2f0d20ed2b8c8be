//! The real binary, headless: help and version, `descent check`, and bad workspaces.

use std::path::Path;
use std::process::{Command, Output};

fn descent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(args)
        .current_dir(cwd)
        .env("XDG_DATA_HOME", cwd.join("xdg"))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn demo_copy(dir: &Path) -> std::path::PathBuf {
    let ws = dir.join("ws");
    descent::demo::unpack_demo(&ws).unwrap();
    ws
}

#[test]
fn version_and_help_work_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let o = descent(&["--version"], dir.path());
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("descent {}", env!("CARGO_PKG_VERSION"))
    );
    let o = descent(&["--help"], dir.path());
    assert!(stdout(&o).contains("check") && stdout(&o).contains("--poll"));
    let o = descent(&["check", "--help"], dir.path());
    assert!(o.status.success() && stdout(&o).contains("Validate"));
}

#[test]
fn the_papers_workspace_is_valid_and_says_which_experiments_wait_for_scores() {
    // A copy without runs: a checkout where the papers were run has scores.
    let dir = tempfile::tempdir().unwrap();
    let papers = Path::new(env!("CARGO_MANIFEST_DIR")).join("workspaces/papers");
    let ws = dir.path().join("papers");
    std::fs::create_dir_all(ws.join("experiments")).unwrap();
    std::fs::copy(papers.join("descent.toml"), ws.join("descent.toml")).unwrap();
    for f in std::fs::read_dir(papers.join("experiments")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, ws.join("experiments").join(f.file_name().unwrap())).unwrap();
    }
    let o = descent(&["check", "papers"], dir.path());
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("experiment(s) are valid"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains(
            "diet-el2n-50.toml: note: not ready to run yet: data.subset.scores: \"diet-score\" has no runs"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn check_passes_on_the_demo_and_fails_with_positions_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ws = demo_copy(dir.path());
    let o = descent(&["check", "ws"], dir.path());
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("ok — descent.toml and 12 experiment(s) are valid"));
    assert!(
        stdout(&o).contains(
            "arithmetic-grpo.toml: note: not ready to run yet: grpo.from = \"arithmetic-lm\" \
             has no run yet: train it first"
        ),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains("warning"),
        "the demo's models fit easily: {}",
        stdout(&o)
    );

    std::fs::write(
        ws.join("experiments/bad.toml"),
        "kind = \"supervised\"\nx = = 1\n",
    )
    .unwrap();
    std::fs::write(ws.join("descent.toml"), "device = \"tpu\"\n").unwrap();
    let o = descent(&["check", "ws"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("ws/descent.toml:1:10: `device`: unknown device \"tpu\""),
        "{out}"
    );
    assert!(out.contains("ws/experiments/bad.toml:2:5: "), "{out}");
    assert!(
        out.contains("2 error(s); 12 of 13 experiment(s) valid"),
        "{out}"
    );
}

#[test]
fn dataset_values_print_as_they_were_written() {
    let dir = tempfile::tempdir().unwrap();
    let o = descent(
        &["data", "inspect", "builtin:iris", "--rows", "2"],
        dir.path(),
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    // iris is stored as f32: its 5.1 is 5.099999904632568 as an f64.
    assert!(out.contains("5.1\t3.5\t1.4\t0.2\tsetosa"), "{out}");
    assert!(!out.contains("5.0999"), "{out}");
}

#[test]
fn check_finds_the_workspace_holding_the_current_folder() {
    let dir = tempfile::tempdir().unwrap();
    let ws = demo_copy(dir.path());
    let o = descent(&["check"], &ws.join("experiments"));
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&*ws.canonicalize().unwrap().to_string_lossy()));
}

#[test]
fn check_without_a_workspace_uses_the_bundled_demo() {
    let dir = tempfile::tempdir().unwrap();
    let o = descent(&["check"], dir.path());
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(dir.path().join("xdg/descent/demo/descent.toml").is_file());
}

#[test]
fn bad_workspaces_get_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = descent(&["check", "nowhere"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("workspace nowhere: No such file or directory"),
        "{}",
        stderr(&o)
    );

    std::fs::write(dir.path().join("file"), "x").unwrap();
    let o = descent(&["check", "file"], dir.path());
    assert!(
        stderr(&o).contains("workspace file: not a folder"),
        "{}",
        stderr(&o)
    );

    std::fs::create_dir(dir.path().join("plain")).unwrap();
    let o = descent(&["check", "plain"], dir.path());
    assert!(stderr(&o).contains("plain is not a descent workspace: it has no descent.toml"));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_tui_without_a_terminal_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    demo_copy(dir.path());
    let o = descent(&["ws"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the TUI needs a terminal"),
        "{}",
        stderr(&o)
    );
}
