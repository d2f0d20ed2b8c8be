//! `descent pull` through the real hf-hub client against a loopback hub (tests/support).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::fake_hub::{COMMIT, FakeHub, Hub};

fn pull(hub: &FakeHub, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_descent"));
    c.arg("pull")
        .args(args)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", &hub.url)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A real safetensors file of ~400 KB.
fn weights() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    let data: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i as f32 / 7.0).to_le_bytes())
        .collect();
    descent_io::safetensors::write(
        &p,
        &[(
            "layer.weight",
            descent_io::dtype::DType::F32,
            &[100, 1000],
            &data,
        )],
    )
    .unwrap();
    std::fs::read(p).unwrap()
}

fn model_hub() -> Hub {
    let mut hub = Hub::default();
    hub.repos.insert(
        "models/org/tiny".into(),
        vec![
            ("config.json".into(), br#"{"model_type": "tiny"}"#.to_vec()),
            ("model.safetensors".into(), weights()),
            ("pytorch_model.bin".into(), b"pickle".to_vec()),
            ("sub/../../escape.txt".into(), b"no".to_vec()),
        ],
    );
    hub.repos.insert(
        "datasets/org/set".into(),
        vec![("data/train.csv".into(), b"a,label\n1,x\n".to_vec())],
    );
    hub
}

#[test]
fn pulls_into_the_python_cache_layout_and_resumes_a_cut_transfer() {
    let mut hub = model_hub();
    hub.cut_once.push("model.safetensors".into());
    let hub = FakeHub::start(hub);
    let home = tempfile::tempdir().unwrap();
    let o = pull(&hub, home.path(), &["org/tiny"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let repo = home.path().join("hub/models--org--tiny");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let snap = repo.join("snapshots").join(COMMIT);
    let link = std::fs::read_link(snap.join("model.safetensors")).unwrap();
    assert!(
        link.to_string_lossy().starts_with("../../blobs/"),
        "{link:?}"
    );
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        weights()
    );
    assert!(
        !snap.join("pytorch_model.bin").exists(),
        "pickle weights are skipped"
    );
    assert!(!home.path().join("hub/escape.txt").exists() && !snap.join("sub").exists());
    let out = text(&o);
    assert!(
        out.contains("skipped pytorch_model.bin") && out.contains("climbs out"),
        "{out}"
    );
    // The cut transfer was resumed from where it stopped, not restarted.
    let resumed = hub.requests().iter().any(|r| {
        r.path.ends_with("/model.safetensors")
            && r.range
                .as_deref()
                .is_some_and(|g| g != "bytes=0-0" && g != "bytes=0-")
    });
    assert!(resumed, "{:?}", hub.requests());
    assert!(String::from_utf8_lossy(&o.stdout).trim().ends_with(COMMIT));

    // A second pull is served from the cache.
    let before = hub.requests().len();
    let o = pull(
        &hub,
        home.path(),
        &["org/tiny", "--include", "*.safetensors"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let downloads = hub.requests()[before..]
        .iter()
        .filter(|r| r.path.contains("/resolve/"))
        .count();
    assert_eq!(downloads, 0);

    // When the branch has moved on (the cached ref names another commit), files are fetched.
    std::fs::write(
        repo.join("refs/main"),
        "0000000000000000000000000000000000000000",
    )
    .unwrap();
    let before = hub.requests().len();
    let o = pull(
        &hub,
        home.path(),
        &["org/tiny", "--include", "config.json"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let downloads = hub.requests()[before..]
        .iter()
        .filter(|r| r.path.ends_with("/config.json"))
        .count();
    assert!(downloads > 0, "a stale cache was trusted");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );

    // Offline: from the cache, with no request at all.
    let before = hub.requests().len();
    let o = pull(&hub, home.path(), &["org/tiny"], &[("HF_HUB_OFFLINE", "1")]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(hub.requests().len(), before);
    let o = pull(
        &hub,
        home.path(),
        &["org/other"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    assert!(
        !o.status.success() && text(&o).contains("HF_HUB_OFFLINE is set"),
        "{}",
        text(&o)
    );

    // ckpt inspect reads what was pulled, through the hub: name.
    let o = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["ckpt", "inspect", "hub:org/tiny"])
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Hugging Face model folder"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_part_file_left_by_an_interrupted_pull_is_resumed_by_the_next() {
    let hub = FakeHub::start(model_hub());
    let home = tempfile::tempdir().unwrap();
    // Simulate a pull killed halfway: the blob's .part file holds the first bytes.
    let w = weights();
    let etag = {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in &w {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    };
    let blobs = home.path().join("hub/models--org--tiny/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{etag}.part")), &w[..300_000]).unwrap();
    assert!(w.len() > 300_000);
    let o = pull(
        &hub,
        home.path(),
        &["org/tiny", "--include", "model.safetensors", "--json"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let ranges: Vec<_> = hub
        .requests()
        .iter()
        .filter_map(|r| r.range.clone())
        .collect();
    assert!(ranges.contains(&"bytes=300000-".to_string()), "{ranges:?}");
    let blob = std::fs::read(blobs.join(&etag)).unwrap();
    assert_eq!(blob, w);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.lines().any(|l| l.contains("\"event\":\"progress\"")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .contains("\"event\":\"finished\""),
        "{stdout}"
    );
}

#[test]
fn datasets_and_errors() {
    let mut hub = model_hub();
    hub.status.insert("models/org/gated".into(), 401);
    hub.status.insert("models/org/broken".into(), 500);
    hub.repos.insert("models/org/gated".into(), vec![]);
    let hub = FakeHub::start(hub);
    let home = tempfile::tempdir().unwrap();

    let o = pull(&hub, home.path(), &["org/set", "--type", "dataset"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        home.path()
            .join("hub/datasets--org--set/snapshots")
            .join(COMMIT)
            .join("data/train.csv")
            .exists()
    );

    let o = pull(&hub, home.path(), &["org/missing"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("org/missing: not found on the hub"),
        "{}",
        text(&o)
    );

    let o = pull(
        &hub,
        home.path(),
        &["org/gated"],
        &[("HF_TOKEN", "hf_secret_token_value")],
    );
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("refused access (401)"), "{out}");
    assert!(
        !out.contains("hf_secret_token_value"),
        "the token never appears in output"
    );
    let auth = hub
        .requests()
        .iter()
        .rev()
        .find_map(|r| r.authorization.clone());
    assert_eq!(
        auth.as_deref(),
        Some("Bearer hf_secret_token_value"),
        "but it is sent to the hub"
    );

    let o = pull(&hub, home.path(), &["org/broken"], &[]);
    assert!(text(&o).contains("HTTP 500"), "{}", text(&o));

    let o = pull(&hub, home.path(), &["../etc"], &[]);
    assert!(text(&o).contains("not a repository id"), "{}", text(&o));
}
