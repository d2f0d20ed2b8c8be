#![no_main]
//! Any bytes given to the GGUF parser give a header or an error, never a panic or a huge
//! allocation.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = descent_io::gguf::parse(std::path::Path::new("fuzz.gguf"), data);
});
