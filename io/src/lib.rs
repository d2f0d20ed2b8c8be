//! descent's readers for what a researcher wants to look at: checkpoints (safetensors, sharded
//! safetensors, GGUF, Hugging Face and diffusers folders, descent run checkpoints) and datasets
//! (CSV/TSV, JSON Lines, Parquet, IDX, image folders, safetensors). Headers are read without
//! loading data; tensor bytes come from memory maps on demand. Every error names the file, the
//! place and the problem.

pub mod checkpoint;
pub mod data;
pub mod diff;
pub mod dtype;
pub mod error;
pub mod gguf;
pub mod hf_folder;
pub mod safetensors;
pub mod safety;
pub mod stats;
pub mod tensor;
pub mod tree;

pub use error::{Error, Result};
