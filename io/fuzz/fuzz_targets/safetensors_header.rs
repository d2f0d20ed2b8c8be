#![no_main]
//! Any bytes given to the safetensors header parser give a header or an error, never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = descent_io::safetensors::parse_bytes(std::path::Path::new("fuzz.safetensors"), data);
});
