//! `purchases.json` and its index opened together: the index brought up to the file,
//! reading only the lines it lacks.

use std::path::Path;

use super::{
    index::{self, Index},
    journal::{self, Journal, Repair},
};

/// Lines given to the index in one transaction while the file is read at start.
const LOAD_BATCH: usize = 20_000;

/// What [`open`] gives.
#[derive(Debug)]
pub struct Opened {
    pub index: Index,
    pub followed: Followed,
    /// Whether the index was built again from the whole file.
    pub rebuilt: bool,
}

/// What [`follow`] gives.
#[derive(Debug)]
pub struct Followed {
    pub journal: Journal,
    /// What the file needed mending, if anything.
    pub repair: Option<Repair>,
    /// Lines read from the file (only those the index lacked).
    pub read: u64,
}

/// Opens `purchases.json` at `path` and its index, and brings the index up to the
/// file: only the lines past what it covers are read, or the whole file when the index
/// is not this file's (missing, or of a file replaced or cut).
pub fn open(path: &Path) -> Result<Opened, String> {
    let index = Index::open(&index::index_path(path))?;
    let covered = index.covered();
    let matches = journal::is_covered_by(path, &covered)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if !matches {
        index.clear()?;
    }
    let mut followed = follow(path, &index)?;
    let mut rebuilt = !matches && covered.len > 0;
    if followed.repair.as_ref().is_some_and(|r| r.rewritten) {
        // Lines moved when the damaged ones were taken out: read the mended file whole.
        index.clear()?;
        let again = follow(path, &index)?;
        followed = Followed {
            repair: followed.repair,
            ..again
        };
        rebuilt = true;
    }
    Ok(Opened {
        index,
        followed,
        rebuilt,
    })
}

/// Opens the file at `path` and gives `index` the lines past what it covers.
pub fn follow(path: &Path, index: &Index) -> Result<Followed, String> {
    let mut read = 0;
    let mut batch = Vec::with_capacity(1024);
    let opened = Journal::open(path, index.covered().len, |id, line, from, to| {
        batch.push((id, line));
        read += 1;
        if batch.len() >= LOAD_BATCH {
            index.apply(&batch, to, from)?;
            batch.clear();
        }
        Ok(())
    })?;
    let covered = index.covered();
    let tail_start = opened.last_start.unwrap_or(covered.tail_start);
    if !batch.is_empty() || opened.journal.len() != covered.len {
        index.apply(&batch, opened.journal.len(), tail_start)?;
    }
    Ok(Followed {
        journal: opened.journal,
        repair: opened.repair,
        read,
    })
}
