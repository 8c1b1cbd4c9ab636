//! This instance's files: `purchases.json` ([`journal`]) and the conversion of the Flask
//! original's file ([`flask`]).

pub mod flask;
pub mod journal;

use std::path::{Path, PathBuf};

/// `<path><suffix>`: a file beside `path`, such as `purchases.json.damaged`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
