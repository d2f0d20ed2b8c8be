//! descent-models: everything numeric in descent, on candle. Knows nothing of the terminal.

mod conv_host;
pub mod data;
pub mod device;
pub mod memory;
pub mod nn;
pub mod optim;
mod simd;
pub mod train;

/// candle's elementwise thread pool spins 25,000 times between jobs before parking; on a few
/// cores that spinning takes the CPU from the matmul threads (the MLP forward pass ran 1.7×
/// slower on 2 cores). Runs set this lower unless the user chose a value; see BENCHMARKS.md.
pub const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
pub const SPIN_LIMIT: &str = "1000";
