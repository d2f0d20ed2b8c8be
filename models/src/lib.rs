//! descent-models: everything numeric in descent, on candle. Knows nothing of the terminal.

mod conv_host;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod folder;
mod gemm_host;
pub mod hf_json;
pub mod linear;
pub mod lm;
pub mod memory;
mod nchw_host;
pub mod nll;
pub mod nn;
pub mod optim;
pub mod probes;
pub mod rl;
mod simd;
#[cfg(test)]
mod test_util;
pub mod train;
pub mod weights;

/// candle's elementwise thread pool spins 25,000 times between jobs before parking; on a few
/// cores that spinning takes the CPU from the matmul threads (the MLP forward pass ran 1.7×
/// slower on 2 cores). Runs set this lower unless the user chose a value; see BENCHMARKS.md.
pub const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
pub const SPIN_LIMIT: &str = "1000";

/// Sets the CPU settings of a training or sampling process: `threads` (0: candle's
/// default, the physical cores) as `RAYON_NUM_THREADS`, and [`SPIN_LIMIT`], unless the user
/// set either; and glibc's allocator keeps freed memory (see `keep_freed_memory`). candle asks for its thread count on every matmul and convolution, and on
/// Linux its default reads `/proc/cpuinfo` each time (about a tenth of a digits UNet step);
/// the variable makes that a lookup.
///
/// # Safety
/// Must run before any other thread exists (it sets environment variables).
pub unsafe fn configure_cpu_threads(threads: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = if threads > 0 {
            threads
        } else {
            candle_core::utils::get_num_threads()
        };
        // SAFETY: the caller guarantees no other thread runs.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        // SAFETY: as above.
        unsafe { std::env::set_var(SPIN_LIMIT_VAR, SPIN_LIMIT) };
    }
    keep_freed_memory();
}

/// candle allocates a fresh buffer for every op's result (and autograd a zeroed one for every
/// gradient it sums). glibc serves blocks over its mmap threshold (128 KiB at first) with
/// fresh mappings and hands freed heap back to the system, so those buffers page-fault in
/// again on every step: a quarter of the demo language model's training step. Kept memory
/// is reused instead (0.24 → 0.18 s a step; BENCHMARKS.md). mimalloc was tried and was
/// slower on the 135M model's 50 MB logits. Unless the user set glibc's own variables.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::vars_os().all(|(k, _)| !k.to_string_lossy().starts_with("MALLOC_")) {
        // SAFETY: mallopt only changes allocator parameters; the values are in range
        // (32 MiB is glibc's largest mmap threshold on 64-bit systems).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        }
    }
}
