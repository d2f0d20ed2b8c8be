//! Helpers the unit tests of several modules share.

use candle_core::Tensor;

/// The largest absolute difference of two tensors of one shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
        .expect("two f32 tensors of one shape")
}
