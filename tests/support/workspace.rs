//! A temporary workspace and the real `descent` binary run in it, for the tests that drive
//! the command line (`runs.rs`, `sample.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub struct Ws {
    pub _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Ws {
    pub fn new(experiments: &[(&str, String)]) -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("experiments")).unwrap();
        std::fs::write(root.join("descent.toml"), "threads = 1\n").unwrap();
        for (name, text) in experiments {
            std::fs::write(root.join(format!("experiments/{name}.toml")), text).unwrap();
        }
        Ws { _dir: dir, root }
    }

    pub fn descent(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_descent"))
            .args(args)
            .current_dir(&self.root)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.descent(args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "descent {args:?} failed:\n{out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    /// Runs `descent ARGS`, which must fail; returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.descent(args);
        assert!(!o.status.success(), "descent {args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// The folder of the single run of `experiment`.
    pub fn only_run(&self, experiment: &str) -> PathBuf {
        let mut runs = self.root.join("runs").join(experiment).read_dir().unwrap();
        runs.next().unwrap().unwrap().path()
    }

    /// Starts a detached run and returns its folder.
    pub fn detach(&self, name: &str) -> PathBuf {
        let out = self.ok(&["run", name, "--detach"]);
        let dir = out.split_whitespace().nth(1).unwrap();
        PathBuf::from(dir)
    }
}
