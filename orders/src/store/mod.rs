//! This instance's files: `purchases.json` ([`journal`]), the history index beside it
//! ([`index`]) with the pages lately read from it ([`pages`]), the two files opened
//! together ([`history`]) and the conversion of the Flask
//! original's file ([`flask`]). Blocking: call from a blocking thread.

pub mod flask;
pub mod history;
pub mod index;
pub mod journal;
pub mod pages;

use std::path::{Path, PathBuf};

/// `<path><suffix>`: a file beside `path`, such as `purchases.json.damaged`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
