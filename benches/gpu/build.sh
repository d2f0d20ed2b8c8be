#!/usr/bin/env bash
# Builds descent and the lm_probe, lm_bench and tiny_sd examples with the `cuda` feature on a
# machine without the CUDA toolkit or a GPU, for benches/gpu/check.sh to run on a GPU machine
# (by hand, not CI). CUDA's compiler and libraries come from PyPI's wheels (nvidia-cuda-nvcc
# and friends); the link takes a stub libcuda.so made from cudarc's symbol list, since the
# driver's own library exists only where a GPU is; the binary loads the real one at run time.
# Writes .gpu/{descent,lm_probe,lm_bench}.xz and .gpu/sdp (the tiny SD pipeline); ~20 min on
# 2 cores.
#
#   [CUDA=13.0] [CAP=90] benches/gpu/build.sh        # CAP: the GPU's compute capability
set -euo pipefail
cd "$(dirname "$0")/../.."
CUDA=${CUDA:-13.0}; CAP=${CAP:-90}; major=${CUDA%%.*}
work=${WORK:-/tmp/descent-cuda}; root=$work/root; mkdir -p "$work/wheels" "$work/x" .gpu
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$work/wheels" \
  "nvidia-cuda-nvcc==$CUDA.*" "nvidia-cuda-runtime==$CUDA.*" "nvidia-cuda-cccl==$CUDA.*" \
  "nvidia-cuda-crt==$CUDA.*" "nvidia-nvvm==$CUDA.*" "nvidia-cuda-nvrtc==$CUDA.*" \
  "nvidia-cublas==$CUDA.*" nvidia-curand
for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/x"; done
c=$work/x/nvidia/cu$major
# The toolkit's layout, which nvcc.profile and cudarc's build script expect.
rm -rf "$root" && mkdir -p "$root/lib64" "$root/targets/x86_64-linux"
ln -s "$c/bin" "$root/bin"; ln -s "$c/nvvm" "$root/nvvm"; ln -s "$c/include" "$root/include"
for f in "$c"/lib/*; do ln -s "$f" "$root/lib64/"; done
for f in "$root"/lib64/*.so.*; do b=${f%%.so.*}.so; [ -e "$b" ] || ln -s "$(basename "$f")" "$b"; done
ln -s "$root/include" "$root/targets/x86_64-linux/include"
ln -s "$root/lib64" "$root/targets/x86_64-linux/lib"; ln -s lib64 "$root/lib"
cargo fetch -q
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-* | tail -1)
grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$cudarc/src/driver/sys/mod.rs" | awk '{print $4}' |
  sort -u | sed 's/.*/int &(void) { return 999; }/' > "$work/custub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib64/libcuda.so" "$work/custub.c"
ln -sf libcuda.so "$root/lib64/libcuda.so.1"
export PATH=$root/bin:$PATH CUDA_HOME=$root CUDA_COMPUTE_CAP=$CAP
export CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-$work/target}
cargo build --release --features cuda --bin descent
cargo build --release -p descent-models --features cuda --example lm_probe --example lm_bench \
  --example tiny_sd
r=$CARGO_TARGET_DIR/release
for b in descent examples/lm_probe examples/lm_bench; do
  strip -o "$work/$(basename $b)" "$r/$b" && xz -T2 -6 -c "$work/$(basename $b)" > ".gpu/$(basename $b).xz"
done
rm -rf .gpu/sdp && LD_LIBRARY_PATH=$root/lib64 "$r/examples/tiny_sd" .gpu/sdp
ls -la .gpu
