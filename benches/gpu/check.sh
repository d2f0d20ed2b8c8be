#!/usr/bin/env bash
# descent's CUDA paths on a GPU machine, by hand (not CI), from the binaries and the tiny SD
# pipeline benches/gpu/build.sh put in .gpu/: the language-model families against
# transformers' logits in f32 on the GPU (and on the CPU, the same folders); the demo's
# pretraining, diffusion, classifier and GRPO runs on the GPU, pretraining also on the CPU
# beside it; sampling (CFG, AG, LinearAG) of the trained models and of the tiny pipeline in
# f16 and f32 on the GPU against the CPU from the same seeds; greedy replies in bf16 on the
# GPU against f32 on the CPU; generation tokens/s against transformers in bf16. Needs
# python3 with torch and transformers. Writes OUT/log.txt and OUT/results.tgz (~7 min).
#
#   OUT=DIR benches/gpu/check.sh
cd "$(dirname "$0")/../.."
R=$PWD; G=$R/.gpu; W=/tmp/descent-gpu; rm -rf $W; mkdir -p $W $OUT
exec > >(tee $OUT/log.txt) 2>&1
T0=$SECONDS; t() { echo "=== [$((SECONDS - T0)) s] $*"; }
t setup
for b in descent lm_probe lm_bench; do xz -dc $G/$b.xz > $W/$b && chmod +x $W/$b; done
B=$W/descent
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for l in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
  d=$(dirname "$(find /usr/local /opt /usr/lib -name "$l" 2>/dev/null | head -1)")
  export LD_LIBRARY_PATH=$d:$LD_LIBRARY_PATH
done
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; ldd $B | grep -E 'cuda|cublas|curand|nvrtc|not found'
if ldd $B | grep -q 'not found'; then
  ls /usr/local/cuda*/ /usr/local/nvidia/ 2>&1 | head; find / -xdev -name 'libcu*.so*' 2>/dev/null | head -30; exit 3
fi
export RAYON_NUM_THREADS=4
cp -r workspaces/demo $W/gpu; cp -r workspaces/demo $W/cpu
sed -i 's/^device = "auto"/device = "cpu"/' $W/cpu/descent.toml
$B check $W/gpu 2>&1 | tail -3
t "lm parity: transformers-written tiny models, descent on cuda (f32)"
python3 benches/parity/lm_parity.py $W/lp >/dev/null && DEVICE=cuda $W/lm_probe $W/lp/* ; DEVICE=cpu $W/lm_probe $W/lp/*
t "parallel: arithmetic-lm cuda | same on cpu | moons | digits"
( timeout 240 $B run arithmetic-lm --device cuda -w $W/gpu > $W/alm-gpu.log 2>&1; echo "alm-gpu rc $?" ) &
( RAYON_NUM_THREADS=6 timeout 240 $B run arithmetic-lm --device cpu -w $W/cpu > $W/alm-cpu.log 2>&1; echo "alm-cpu rc $?" ) &
( timeout 90 $B run moons-diffusion --device cuda -w $W/gpu > $W/moons.log 2>&1; echo "moons rc $?"
  M=$(ls -d $W/gpu/runs/moons-diffusion/*/model | head -1)
  timeout 60 $B sample $M -w $W/gpu --compare cfg,ag,linear-ag -n 64 --steps 50 --out $W/s-moons-gpu --json > $W/s-moons-gpu.json 2>&1; echo "moons sample gpu rc $?"
  timeout 60 $B sample $M -w $W/cpu --compare cfg,ag,linear-ag -n 64 --steps 50 --out $W/s-moons-cpu --json > $W/s-moons-cpu.json 2>&1; echo "moons sample cpu rc $?" ) &
( sed -i 's/^steps = 1500/steps = 300/' $W/gpu/experiments/digits-cnn.toml
  timeout 90 $B run digits-cnn --device cuda -w $W/gpu > $W/cnn.log 2>&1; echo "cnn rc $?"
  sed -i 's/^steps = 2000/steps = 500/' $W/gpu/experiments/digits-diffusion.toml
  timeout 150 $B run digits-diffusion --device cuda -w $W/gpu > $W/dd.log 2>&1; echo "digits-diffusion rc $?"
  D=$(ls -d $W/gpu/runs/digits-diffusion/*/model | head -1)
  timeout 60 $B sample $D -w $W/gpu --compare cfg,ag -n 64 --steps 30 --judge digits-cnn --out $W/s-digits-gpu --json > $W/s-digits-gpu.json 2>&1; echo "digits sample gpu rc $?"
  timeout 60 $B sample $D -w $W/cpu --compare cfg,ag -n 64 --steps 30 --out $W/s-digits-cpu --json > $W/s-digits-cpu.json 2>&1; echo "digits sample cpu rc $?" ) &
t "tiny SD pipeline: cuda f16, cuda f32, cpu f32 (same seeds)"
for v in gpu:f16 gpu:f32 cpu:f32; do w=${v%:*}; d=${v#*:}
  timeout 60 $B sample $G/sdp -w $W/$w --prompt "a photo of a cat" --negative-prompt blurry --dtype $d --sampler ddim --steps 10 --scale 7.5 --compare cfg,ag -n 2 --out $W/s-sd-$w-$d --json > $W/s-sd-$w-$d.json 2>&1; echo "sd $v rc $?"; done
wait
t "arithmetic-lm finished; generate bf16 cuda vs f32 cpu; then GRPO on cuda"
$B runs -w $W/gpu; $B runs -w $W/cpu
L=$(ls -d $W/gpu/runs/arithmetic-lm/*/model 2>/dev/null | head -1)
for p in 12+7 37+45 99+99 58+26; do
  echo "$p cuda: $($B generate $L --chat --prompt $p --device cuda --max-new-tokens 8 2>&1 | tr '\n' ' ') | cpu: $($B generate $L --chat --prompt $p --device cpu --max-new-tokens 8 2>&1 | tr '\n' ' ')"; done
timeout 80 $B run arithmetic-grpo --device cuda -w $W/gpu > $W/grpo.log 2>&1; echo "grpo rc $?"
$B runs -w $W/gpu 2>&1 | grep -E 'grpo|STATE|state'
t "generation speed, SmolLM2-135M config, bf16 on the GPU"
python3 benches/parity/lm_speed.py write $W/smol && DEVICE=cuda timeout 45 $W/lm_bench $W/smol; DEVICE=cuda timeout 45 python3 benches/parity/lm_speed.py run $W/smol
t "GPU against CPU from the same seeds: the largest difference of the final samples"
python3 - $W <<'PY'
import os, sys
from safetensors.numpy import load_file
w = sys.argv[1]
pairs = [("s-sd-gpu-f32", "s-sd-cpu-f32"), ("s-sd-gpu-f16", "s-sd-cpu-f32"),
         ("s-moons-gpu", "s-moons-cpu"), ("s-digits-gpu", "s-digits-cpu")]
for a, b in pairs:
    for mode in ("cfg", "ag", "linear-ag"):
        pa, pb = (f"{w}/{d}/{mode}/samples.safetensors" for d in (a, b))
        if os.path.exists(pa) and os.path.exists(pb):
            x, y = load_file(pa)["samples"], load_file(pb)["samples"]
            d = abs(x.astype("f8") - y.astype("f8"))
            print(f"{a} vs {b}, {mode}: max {d.max():.2e}, mean {d.mean():.2e}")
PY
t done
cd $W && tar czf $OUT/results.tgz --exclude=checkpoints --exclude=model *.log *.json s-* gpu/runs cpu/runs lp/*/config.json 2>/dev/null
# Two pictures to look at; every job's images are in the archive.
cp s-moons-gpu/ag/scatter.png $OUT/moons-ag.png 2>/dev/null
cp s-digits-gpu/ag/grid.png $OUT/digits-ag.png 2>/dev/null
ls s-moons-gpu s-digits-gpu 2>/dev/null
