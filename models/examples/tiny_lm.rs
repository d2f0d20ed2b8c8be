//! Writes the tests' tiny random Llama folder (word-level tokenizer, chat template) into a
//! folder, for trying `descent generate` and the Checkpoints pane's talk box where no model
//! can be downloaded (CI's tmux check does). Its weights are random: its replies are noise.
//!
//!     cargo run -p descent-models --example tiny_lm -- DIR

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: tiny_lm DIR");
        std::process::exit(2);
    };
    if let Err(e) = descent_models::lm::tiny::write_folder(std::path::Path::new(&dir)) {
        eprintln!("tiny_lm: {e}");
        std::process::exit(1);
    }
}
