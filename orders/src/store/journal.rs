//! `purchases.json`: one purchase event per line (JSON Lines) with its stream sequence,
//! appended and fsynced by the appender. Blocking I/O: call from a blocking thread.
//!
//! One process owns this file: each orders instance keeps its own, written by its own
//! consumer of the whole stream, so every instance's file holds every purchase.

use super::sibling;
use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use uuid::Uuid;

use crate::domain::{index::Index, purchase::Line};

/// Where the file stands against the stream, from its lines: what the appender needs
/// to find the events the file lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    /// The last line in file order: its stream sequence and event id. Lines are appended
    /// in stream order, so this is how far the file has followed the stream.
    pub tail: Option<(u64, Uuid)>,
    /// Every stream sequence in the file, sorted.
    pub seqs: Vec<u64>,
}

impl Positions {
    /// The first sequence from `first` up to the tail's that no line has: a line lost
    /// after it was written (removed by hand, a restored backup), if any.
    pub fn first_gap(&self, first: u64) -> Option<u64> {
        let (tail, _) = self.tail?;
        let mut expected = first;
        for &seq in self.seqs.iter().skip_while(|&&seq| seq < first) {
            if expected > tail {
                break;
            }
            if seq > expected {
                return Some(expected);
            }
            expected = seq + 1;
        }
        (expected <= tail).then_some(expected)
    }
}

/// What [`Journal::open`] had to mend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Bytes of lines that were not events, taken out of the file.
    pub removed_bytes: u64,
    /// Their line numbers (from 1).
    pub lines: Vec<usize>,
}

/// What [`Journal::open`] gives.
#[derive(Debug)]
pub struct Opened {
    pub journal: Journal,
    /// What had to be mended, if anything.
    pub repair: Option<Repair>,
    pub positions: Positions,
}

/// The open file, positioned for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Length of the file up to its last complete line.
    len: u64,
}

impl Journal {
    /// Opens (or creates) the file and loads every line into `index`. Lines that are
    /// not events (a last line cut short by a crash, a write a crash interrupted and the
    /// next one ran into, a bad edit) are taken out of the file and kept in
    /// `<file>.damaged`; the appender writes their events again from the stream.
    pub fn open(path: &Path, index: &mut Index) -> Result<Opened, String> {
        let fail = |err: io::Error| format!("cannot open {}: {err}", path.display());
        service_kit::private::parent_dir(path).map_err(fail)?;
        let mut file =
            service_kit::private::options(OpenOptions::new().read(true).append(true).create(true))
                .open(path)
                .map_err(fail)?;
        service_kit::private::file(path).map_err(fail)?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut buf = Vec::with_capacity(512);
        let mut offset: u64 = 0;
        let mut end: u64 = 0;
        let mut damaged: Vec<(u64, u64, usize)> = Vec::new();
        let mut number = 0usize;
        let mut positions = Positions::default();
        loop {
            buf.clear();
            let read = reader.read_until(b'\n', &mut buf).map_err(fail)?;
            if read == 0 {
                break;
            }
            number += 1;
            let parsed = if buf.last() == Some(&b'\n') {
                parse(&buf)
            } else {
                Err("the line is cut short".to_owned())
            };
            match parsed {
                Ok(Some((id, line))) => {
                    positions.tail = Some((line.seq, id));
                    positions.seqs.push(line.seq);
                    index.insert(id, &line);
                    end = offset + read as u64;
                }
                Ok(None) => end = offset + read as u64, // a blank line
                Err(err) => {
                    tracing::warn!(file = %path.display(), line = number, %err, "a line of the purchases file is not an event");
                    damaged.push((offset, read as u64, number));
                }
            }
            offset += read as u64;
        }
        drop(reader);
        let mut repair = None;
        if let Some(&(last_start, _, _)) = damaged.last() {
            let removed_bytes = damaged.iter().map(|(_, len, _)| len).sum();
            // Damage only at the end (the usual crash) is cut off in place.
            let only_tail = damaged.len() == 1 && last_start >= end;
            keep_damaged(path, &damaged).map_err(fail)?;
            if only_tail {
                file.set_len(end).map_err(fail)?;
                file.sync_all().map_err(fail)?;
            } else {
                file = rewrite_without(path, &damaged, offset).map_err(fail)?;
            }
            end = offset - removed_bytes;
            repair = Some(Repair {
                removed_bytes,
                lines: damaged.iter().map(|(_, _, number)| *number).collect(),
            });
        }
        positions.seqs.sort_unstable();
        positions.seqs.dedup();
        Ok(Opened {
            journal: Self {
                path: path.to_owned(),
                file,
                len: end,
            },
            repair,
            positions,
        })
    }

    /// Appends `bytes` (whole lines) and waits until they are on disk. On failure the
    /// file is cut back to its previous length, so no partial line stays behind.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(err) => {
                let _ = self.file.set_len(self.len);
                Err(err)
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Where lines taken out of `path` are kept.
pub fn damaged_path(path: &Path) -> PathBuf {
    sibling(path, ".damaged")
}

/// Appends the `damaged` ranges (offset, length, line number) of `path` to
/// [`damaged_path`], one per line.
fn keep_damaged(path: &Path, damaged: &[(u64, u64, usize)]) -> io::Result<()> {
    let mut source = File::open(path)?;
    let mut kept = service_kit::private::options(OpenOptions::new().create(true).append(true))
        .open(damaged_path(path))?;
    for &(start, len, _) in damaged {
        let mut bytes = vec![0; usize::try_from(len).map_err(io::Error::other)?];
        source.seek(SeekFrom::Start(start))?;
        source.read_exact(&mut bytes)?;
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        kept.write_all(&bytes)?;
    }
    kept.sync_all()
}

/// Writes `path` again without the `damaged` ranges (through a temporary file renamed
/// over it, so a crash leaves the old or the new file) and opens it for appending.
fn rewrite_without(path: &Path, damaged: &[(u64, u64, usize)], len: u64) -> io::Result<File> {
    let temporary = sibling(path, ".repairing");
    let mut source = BufReader::new(File::open(path)?);
    let mut out = io::BufWriter::new(
        service_kit::private::options(OpenOptions::new().write(true).create(true).truncate(true))
            .open(&temporary)?,
    );
    let mut at = 0;
    for &(start, skip, _) in damaged {
        io::copy(&mut (&mut source).take(start - at), &mut out)?;
        io::copy(&mut (&mut source).take(skip), &mut io::sink())?;
        at = start + skip;
    }
    io::copy(&mut (&mut source).take(len - at), &mut out)?;
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().read(true).append(true).open(path)
}

/// The event id and line, `None` for a blank line.
fn parse(raw: &[u8]) -> Result<Option<(Uuid, Line)>, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let line: Line = serde_json::from_slice(raw).map_err(|err| err.to_string())?;
    let id = Uuid::parse_str(&line.event.id).map_err(|err| format!("bad event id: {err}"))?;
    Ok(Some((id, line)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bus_schema::orders::{Article, PurchasedEvent};

    fn line(n: u64) -> Line {
        Line::new(
            PurchasedEvent {
                id: Uuid::now_v7().to_string(),
                username: "victor".into(),
                article: Article {
                    id: 1,
                    name: "Article 1".into(),
                    price: 1000,
                },
                purchased_at: "2026-11-23T10:00:00Z".into(),
                idempotency_key: None,
            },
            n,
        )
    }

    fn bytes(lines: &[Line]) -> Vec<u8> {
        let mut buf = Vec::new();
        for l in lines {
            l.encode_into(&mut buf);
        }
        buf
    }

    #[test]
    fn appended_lines_are_loaded_again_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let lines = [line(1), line(2), line(3)];
        let opened = Journal::open(&path, &mut Index::default()).expect("open");
        assert_eq!(opened.repair, None);
        assert_eq!(opened.positions, Positions::default());
        let mut journal = opened.journal;
        journal.append(&bytes(&lines)).expect("append");
        drop(journal);

        let mut index = Index::default();
        let positions = Journal::open(&path, &mut index).expect("reopen").positions;
        let ids: Vec<String> = index
            .history("victor")
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        assert_eq!(
            ids,
            lines.iter().map(|l| l.event.id.clone()).collect::<Vec<_>>()
        );
        assert_eq!(positions.seqs, [1, 2, 3]);
        let last = Uuid::parse_str(&lines[2].event.id).expect("uuid");
        assert_eq!(positions.tail, Some((3, last)));
        assert_eq!(positions.first_gap(1), None);
    }

    #[test]
    fn a_cut_short_last_line_is_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let good = bytes(&[line(1)]);
        let mut content = good.clone();
        content.extend_from_slice(&bytes(&[line(2)])[..40]);
        std::fs::write(&path, &content).expect("write");

        let mut index = Index::default();
        let opened = Journal::open(&path, &mut index).expect("open");
        assert_eq!(
            opened.repair,
            Some(Repair {
                removed_bytes: 40,
                lines: vec![2]
            })
        );
        assert_eq!(opened.positions.seqs, [1]);
        assert_eq!(std::fs::read(&path).expect("read"), good);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_gap_is_the_first_sequence_up_to_the_tail_without_a_line() {
        let id = Uuid::now_v7();
        let at = |seqs: &[u64], tail: u64| Positions {
            tail: Some((tail, id)),
            seqs: seqs.to_vec(),
        };
        assert_eq!(at(&[1, 2, 3], 3).first_gap(1), None);
        assert_eq!(at(&[1, 3], 3).first_gap(1), Some(2));
        assert_eq!(at(&[2, 3], 3).first_gap(1), Some(1));
        // Sequences the stream no longer holds (below its first) are not gaps.
        assert_eq!(at(&[2, 3], 3).first_gap(2), None);
        assert_eq!(at(&[1, 2, 5, 6], 6).first_gap(2), Some(3));
        // A line filled in later sits after the tail in the file, in `seqs` all the same.
        assert_eq!(at(&[1, 2, 3, 4], 3).first_gap(1), None);
        assert_eq!(Positions::default().first_gap(1), None);
    }

    #[test]
    fn bad_lines_in_the_middle_are_taken_out_and_kept_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let (first, third) = (line(1), line(3));
        // A write cut short and the next one run into it, then a good line.
        let second = bytes(&[line(2)]);
        let mut content = bytes(std::slice::from_ref(&first));
        content.extend_from_slice(&second[..30]);
        content.extend_from_slice(&second);
        content.extend_from_slice(b"{garbage}\n");
        content.extend_from_slice(&bytes(std::slice::from_ref(&third)));
        std::fs::write(&path, &content).expect("write");

        let mut index = Index::default();
        let opened = Journal::open(&path, &mut index).expect("open");
        assert_eq!(opened.repair.expect("repaired").lines, [2, 3]);
        assert_eq!(opened.positions.seqs, [1, 3]);
        assert_eq!(index.len(), 2);
        let mut journal = opened.journal;
        let fourth = line(4);
        journal
            .append(&bytes(std::slice::from_ref(&fourth)))
            .expect("append");
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes(&[first, third, fourth])
        );
        let kept = std::fs::read_to_string(damaged_path(&path)).expect("kept");
        assert_eq!(kept.lines().count(), 2);
        assert!(kept.ends_with("{garbage}\n"), "{kept}");
    }
}

#[cfg(test)]
mod load_time {
    use super::*;
    use bus_schema::orders::{Article, PurchasedEvent};

    /// `cargo test --release -p orders --lib load_time -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn a_million_lines_load() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let mut bytes = Vec::new();
        for n in 0..1_000_000u64 {
            Line::new(
                PurchasedEvent {
                    id: Uuid::now_v7().to_string(),
                    username: format!("user{}", n % 1000),
                    article: Article {
                        id: 1,
                        name: "Article 1".into(),
                        price: 1000,
                    },
                    purchased_at: "2026-11-23T10:00:00.123456789Z".into(),
                    idempotency_key: None,
                },
                n + 1,
            )
            .encode_into(&mut bytes);
        }
        std::fs::write(&path, &bytes).expect("write");
        let started = std::time::Instant::now();
        let mut index = Index::default();
        Journal::open(&path, &mut index).expect("open");
        eprintln!(
            "{} lines, {} MB: {:?}",
            index.len(),
            bytes.len() / 1_000_000,
            started.elapsed()
        );
    }
}
