//! One error type for every reader: it names the file, the place in it and the problem.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub file: PathBuf,
    /// Where in the file: "header", "byte 1024", "line 7", "tensor blk.0.attn_q.weight" …
    pub place: String,
    pub problem: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(file: &Path, place: impl Into<String>, problem: impl Into<String>) -> Error {
        Error {
            file: file.to_path_buf(),
            place: place.into(),
            problem: problem.into(),
        }
    }

    /// An I/O failure on the whole file (open, read, map).
    pub fn io(file: &Path, e: std::io::Error) -> Error {
        Error::new(file, "", e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if !self.place.is_empty() {
            write!(f, ": {}", self.place)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for Error {}
