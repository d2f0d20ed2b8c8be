//! A tensor as listed by a checkpoint header: where its bytes are, not the bytes themselves.

use crate::dtype::DType;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    /// The file holding the bytes (shards and folders hold several).
    pub file: PathBuf,
    /// Absolute byte offset of the first element in `file`.
    pub offset: u64,
    pub bytes: u64,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(u64::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// Checks a shape and returns its element count; `None` when the product overflows.
pub fn numel(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}
