//! Reinforcement learning of language models: GRPO with D³S down-sampling, its tasks and
//! reward functions.

pub mod grpo;
pub mod loss;
pub mod rewards;
pub mod select;
pub mod tasks;
