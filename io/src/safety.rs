//! Refusals that protect the user: pickle weights (loading them can run code) and file names
//! that would escape the folder they are meant to land in.

use std::path::{Component, Path};

const PICKLE_EXTENSIONS: [&str; 6] = ["bin", "pt", "pth", "ckpt", "pkl", "pickle"];

/// Whether a file holds pickled weights, judged by its extension as the hub does.
pub fn is_pickle(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PICKLE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

pub const PICKLE_REFUSAL: &str = "pickle weights are not opened: loading a pickle can run \
     arbitrary code. Use the model's .safetensors files, or convert it once in a sandbox \
     (e.g. with the `safetensors` Python package)";

/// Accepts a relative path that stays inside its folder: no `..`, no root, no drive prefix.
pub fn check_relative(name: &str) -> Result<(), String> {
    let p = Path::new(name);
    if name.is_empty() {
        return Err("empty file name".into());
    }
    if name.contains('\\') || name.contains('\0') {
        return Err(format!("file name {name:?} has a backslash or NUL"));
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "file name {name:?} climbs out of its folder with \"..\""
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("file name {name:?} is an absolute path"));
            }
        }
    }
    Ok(())
}

/// JSON side files (indexes, configs) larger than this are refused unread.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Reads a JSON side file, refusing one larger than [`MAX_JSON_BYTES`].
pub fn read_json_text(path: &Path) -> crate::Result<String> {
    let len = std::fs::metadata(path)
        .map_err(|e| crate::Error::io(path, e))?
        .len();
    if len > MAX_JSON_BYTES {
        return Err(crate::Error::new(
            path,
            "",
            format!("{len} bytes is over the {MAX_JSON_BYTES}-byte cap for a JSON file"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_names_and_pickles_are_refused() {
        assert!(check_relative("unet/diffusion_pytorch_model.safetensors").is_ok());
        assert!(check_relative("../../etc/passwd").is_err());
        assert!(check_relative("a/../../b").is_err());
        assert!(check_relative("/etc/passwd").is_err());
        assert!(check_relative("").is_err());
        assert!(is_pickle(Path::new("pytorch_model.bin")));
        assert!(is_pickle(Path::new("x/model.PT")));
        assert!(!is_pickle(Path::new("model.safetensors")));
    }
}
