//! descent-models: everything numeric in descent, on candle. Knows nothing of the terminal.

pub mod device;
