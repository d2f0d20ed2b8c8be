//! `descent generate` through the real binary on a tiny random Llama folder written in the
//! Hugging Face layout (config, safetensors, a word-level tokenizer.json, a chat template,
//! generation_config.json), and its bad inputs.

use serde_json::json;
use std::path::Path;
use std::process::Command;

use descent_models::lm::tiny::WORDS;

fn write_model(dir: &Path) {
    descent_models::lm::tiny::write_folder(dir).unwrap();
}

fn descent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap()
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_folder_generates_greedy_and_seeded_completions_with_logprobs() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path());
    let m = tmp.path().to_str().unwrap();
    let a = json_of(&descent(&["generate", m, "--prompt", "a b c", "--json"]));
    let c = &a["completions"][0];
    let n = c["tokens"].as_array().unwrap().len();
    // generation_config.json's budget, unless a stop token came first.
    assert!(n == 6 || c["stopped"] == true, "{c}");
    assert_eq!(c["logprobs"].as_array().unwrap().len(), n);
    assert_eq!(a["prompt_tokens"], 3);
    let b = json_of(&descent(&["generate", m, "--prompt", "a b c", "--json"]));
    assert_eq!(a, b, "greedy decoding repeats");
    // A stop string ends the completion where it appears.
    let first = WORDS[c["tokens"][0].as_u64().unwrap() as usize];
    let stopped = json_of(&descent(&[
        "generate", m, "--prompt", "a b c", "--stop", first, "--json",
    ]));
    let sc = &stopped["completions"][0];
    assert_eq!(sc["stopped"], true, "{sc}");
    assert_eq!(sc["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(sc["completion"], "");
    let sampled = || {
        json_of(&descent(&[
            "generate",
            m,
            "--prompt",
            "a b c",
            "--temperature",
            "1",
            "-n",
            "3",
            "--seed",
            "4",
            "--max-new-tokens",
            "8",
            "--json",
        ]))
    };
    let s = sampled();
    assert_eq!(s["completions"].as_array().unwrap().len(), 3);
    assert_eq!(s, sampled(), "a seed repeats");
    let chat = json_of(&descent(&[
        "generate", m, "--prompt", "hi there", "--chat", "--system", "one two", "--json",
    ]));
    assert_eq!(
        chat["prompt"],
        "system : one two user : hi there assistant : "
    );
    // Streaming prints the completion as text.
    let o = descent(&["generate", m, "--prompt", "a b", "--max-new-tokens", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.trim().is_empty() || text.contains('\n'), "{text:?}");
}

#[test]
fn bad_requests_name_the_file_or_flag() {
    let tmp = tempfile::tempdir().unwrap();
    write_model(tmp.path());
    let m = tmp.path().to_str().unwrap();
    let fails = |args: &[&str]| {
        let o = descent(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let long = vec!["a"; 40].join(" ");
    let e = fails(&["generate", m, "--prompt", &long]);
    assert!(
        e.contains("the prompt is 40 tokens; the model has 32 positions"),
        "{e}"
    );
    let e = fails(&["generate", m, "--prompt", "a b", "--max-new-tokens", "31"]);
    assert!(
        e.contains("--max-new-tokens 31; the model has 32 positions"),
        "{e}"
    );
    let e = fails(&["generate", m, "--prompt", "a", "--temperature", "-1"]);
    assert!(e.contains("--temperature -1"), "{e}");
    std::fs::write(tmp.path().join("tokenizer_config.json"), "{}").unwrap();
    let e = fails(&["generate", m, "--prompt", "a", "--chat"]);
    assert!(e.contains("no chat template"), "{e}");
    std::fs::write(
        tmp.path().join("tokenizer_config.json"),
        json!({"chat_template": "{% for m in messages %}{{ m.role }"}).to_string(),
    )
    .unwrap();
    let e = fails(&["generate", m, "--prompt", "a", "--chat"]);
    assert!(
        e.contains("tokenizer_config.json (chat_template): the chat template"),
        "{e}"
    );
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let e = fails(&["generate", m, "--prompt", "a"]);
    assert!(e.contains("tokenizer.json: missing"), "{e}");
    write_model(tmp.path());
    let cfg = tmp.path().join("config.json");
    std::fs::write(&cfg, json!({"model_type": "gpt2"}).to_string()).unwrap();
    let e = fails(&["generate", m, "--prompt", "a"]);
    assert!(
        e.contains("gpt2 is not supported; descent supports llama, qwen2, qwen3"),
        "{e}"
    );
}

#[test]
fn a_model_too_big_for_memory_is_refused_before_it_is_loaded_and_the_device_flag_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("huge");
    std::fs::create_dir_all(&dir).unwrap();
    // 40,000 layers of width 16,384: petabytes of weights; no weight file is needed to tell.
    let config = json!({
        "model_type": "llama", "vocab_size": 1000, "hidden_size": 16384,
        "intermediate_size": 65536, "num_hidden_layers": 40000, "num_attention_heads": 128,
        "max_position_embeddings": 4096,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let o = descent(&["generate", dir.to_str().unwrap(), "--prompt", "hi"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("huge") && err.contains("would need"), "{err}");
    let o = descent(&[
        "generate",
        dir.to_str().unwrap(),
        "--prompt",
        "hi",
        "--device",
        "tpu",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("tpu"));
}
