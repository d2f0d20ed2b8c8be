//! descent-models: everything numeric in descent, on candle. Knows nothing of the terminal.

pub mod data;
pub mod device;
pub mod nn;
pub mod optim;
pub mod train;
