//! Writes the tiny random Stable Diffusion pipeline the tests use into a folder, for trying
//! the Sampler pane on a pipeline where none can be downloaded (CI's tmux check does).
//! Its weights are random: its images are noise.
//!
//!     cargo run -p descent-models --example tiny_sd -- DIR [epsilon|v_prediction]

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: tiny_sd DIR [epsilon|v_prediction]");
        std::process::exit(2);
    };
    let prediction = args.get(2).map_or("epsilon", String::as_str);
    if let Err(e) =
        descent_models::diffusion::sd::tiny::write(std::path::Path::new(dir), prediction)
    {
        eprintln!("tiny_sd: {e}");
        std::process::exit(1);
    }
}
