#!/usr/bin/env bash
# Every side-by-side speed comparison of issues 9 and 10 in interleaved rounds, for
# BENCHMARKS.md on a CPU not measured yet (not run in CI): language-model generation and
# training steps against transformers/PyTorch, the Stable Diffusion UNet step against
# diffusers', the digits UNet's sampling and training passes against the same net in PyTorch.
#
#   PY=/path/to/venv/bin/python [ROUNDS=3] benches/parity/speed_rounds.sh [WORK_DIR]
#
# The venv needs torch, transformers, diffusers, safetensors and numpy. The models are written
# once into WORK_DIR (default /tmp/descent-speed) and reused. Run nothing else meanwhile.
set -euo pipefail
PY=${PY:-python3}
ROUNDS=${ROUNDS:-3}
W=${1:-/tmp/descent-speed}
cd "$(dirname "$0")/../.."
lscpu | grep "Model name"
date -u
cargo build --release --workspace --bins --examples 2>&1 | tail -1
mkdir -p "$W"
[ -f "$W/smol/model.safetensors" ] || "$PY" benches/parity/lm_speed.py write "$W/smol"
[ -d "$W/sdp/pipeline" ] || THREADS=2 "$PY" benches/parity/sd_pipeline.py "$W/sdp" 2 0 >/dev/null
mkdir -p "$W/demo_lm"
# The demo language model's configuration (arithmetic-lm's), weights fresh on each side.
cat >"$W/demo_lm/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 270,
 "hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 4,
 "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 32,
 "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
 "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
EOF
# A short digits-diffusion run for PyTorch's copy of the digits UNet to read.
if ! ls "$W"/ws/runs/digits-diffusion/*/model >/dev/null 2>&1; then
    rm -rf "$W/ws" && cp -r workspaces/demo "$W/ws" && rm -rf "$W/ws/runs"
    sed -i 's/^steps = 2000/steps = 200/' "$W/ws/experiments/digits-diffusion.toml"
    ./target/release/descent run digits-diffusion -w "$W/ws" >/dev/null
fi
DIGITS=$(ls -d "$W"/ws/runs/digits-diffusion/*/model | head -1)

export RAYON_NUM_THREADS=2 THREADS=2
for r in $(seq "$ROUNDS"); do
    echo "== round $r"
    ./target/release/examples/lm_bench "$W/smol" | tail -3
    "$PY" benches/parity/lm_speed.py run "$W/smol" 2>/dev/null | grep -E "transformers|bandwidth"
    STEPS=6 ./target/release/examples/lm_train_bench "$W/smol" 4 64 | tail -1
    STEPS=6 "$PY" benches/parity/lm_train_speed.py "$W/smol" 4 64 2>/dev/null | tail -1
    STEPS=40 ./target/release/examples/lm_train_bench "$W/demo_lm" 64 16 | tail -1
    STEPS=40 "$PY" benches/parity/lm_train_speed.py "$W/demo_lm" 64 16 2>/dev/null | tail -1
    ./target/release/examples/sd_probe "$W/sdp/pipeline" "$W/sdp/noise.safetensors" \
        "$W/probe.safetensors" "a photo of a cat" | tail -1
    "$PY" benches/parity/sd_unet_step.py "$W/sdp/pipeline" 2>/dev/null | tail -1
    ./target/release/examples/denoiser_step 50
    "$PY" benches/parity/denoiser_step.py "$DIGITS" 50
done
