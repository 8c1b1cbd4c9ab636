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

use super::index::Covered;
use crate::domain::purchase::Line;

/// What [`Journal::open`] had to mend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Bytes of lines that were not events, taken out of the file.
    pub removed_bytes: u64,
    /// Their line numbers (from where the reading started, 1 for its first line).
    pub lines: Vec<usize>,
    /// Whether lines before the last good one were taken out (the file was written
    /// again, and what followed them moved), not merely a damaged end cut off.
    pub rewritten: bool,
}

/// What [`Journal::open`] gives.
#[derive(Debug)]
pub struct Opened {
    pub journal: Journal,
    /// What had to be mended, if anything.
    pub repair: Option<Repair>,
    /// Where the last good line read starts, if any was read.
    pub last_start: Option<u64>,
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
    /// Opens (or creates) the file and gives every line from byte `start` on (the end
    /// of a line, 0 for all of them) to `each`, with where the line starts and ends.
    /// Lines that are not events (a last line cut short by a crash, a write a crash
    /// interrupted and the next one ran into, a bad edit) are taken out of the file and
    /// kept in `<file>.damaged`; the appender writes their events again from the stream.
    pub fn open(
        path: &Path,
        start: u64,
        mut each: impl FnMut(Uuid, Line, u64, u64) -> Result<(), String>,
    ) -> Result<Opened, String> {
        let fail = |err: io::Error| format!("cannot open {}: {err}", path.display());
        service_kit::private::parent_dir(path).map_err(fail)?;
        let mut file =
            service_kit::private::options(OpenOptions::new().read(true).append(true).create(true))
                .open(path)
                .map_err(fail)?;
        service_kit::private::file(path).map_err(fail)?;
        file.seek(SeekFrom::Start(start)).map_err(fail)?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut buf = Vec::with_capacity(512);
        let mut offset: u64 = start;
        let mut end: u64 = start;
        let mut damaged: Vec<(u64, u64, usize)> = Vec::new();
        let mut number = 0usize;
        let mut last_start = None;
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
                    end = offset + read as u64;
                    each(id, line, offset, end)?;
                    last_start = Some(offset);
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
        if let Some(&(last_damaged, _, _)) = damaged.last() {
            let removed_bytes = damaged.iter().map(|(_, len, _)| len).sum();
            // Damage only at the end (the usual crash) is cut off in place.
            let only_tail = damaged.len() == 1 && last_damaged >= end;
            keep_damaged(path, &damaged).map_err(fail)?;
            if only_tail {
                file.set_len(end).map_err(fail)?;
                file.sync_all().map_err(fail)?;
            } else {
                file = rewrite_without(path, &damaged, offset).map_err(fail)?;
            }
            end = offset - removed_bytes;
            if !only_tail {
                last_start = None; // moved: the caller reads the file again
            }
            repair = Some(Repair {
                removed_bytes,
                lines: damaged.iter().map(|(_, _, number)| *number).collect(),
                rewritten: !only_tail,
            });
        }
        Ok(Opened {
            journal: Self {
                path: path.to_owned(),
                file,
                len: end,
            },
            repair,
            last_start,
        })
    }

    /// Appends `bytes` (whole lines) and waits until they are on disk; the file's new
    /// length. On failure the file is cut back to its previous length, so no partial
    /// line stays behind.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(self.len)
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

    /// The file's length, up to its last complete line.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Whether `path` is the file an index covering `covered` was built from: at least that
/// long, with the line the index took last where it says (an index of another file, or
/// of this one before it was cut or written again, is built again).
pub fn is_covered_by(path: &Path, covered: &Covered) -> io::Result<bool> {
    let Some((_, id)) = covered.tail else {
        return Ok(covered.len == 0);
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err),
    };
    if file.metadata()?.len() < covered.len || covered.tail_start >= covered.len {
        return Ok(false);
    }
    let mut line =
        vec![0; usize::try_from(covered.len - covered.tail_start).map_err(io::Error::other)?];
    file.seek(SeekFrom::Start(covered.tail_start))?;
    file.read_exact(&mut line)?;
    Ok(line.last() == Some(&b'\n') && matches!(parse(&line), Ok(Some((found, _))) if found == id))
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

    /// Opens `path` from `start`: the journal and the (seq, start, end) of each line read.
    fn open_from(path: &Path, start: u64) -> (Opened, Vec<(u64, u64, u64)>) {
        let mut read = Vec::new();
        let opened = Journal::open(path, start, |_, line, from, to| {
            read.push((line.seq, from, to));
            Ok(())
        })
        .expect("open");
        (opened, read)
    }

    #[test]
    fn appended_lines_are_read_again_in_order_and_from_where_asked() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let lines = [line(1), line(2), line(3)];
        let (opened, read) = open_from(&path, 0);
        assert_eq!(
            (opened.repair, opened.last_start, read),
            (None, None, vec![])
        );
        let mut journal = opened.journal;
        let len = journal.append(&bytes(&lines)).expect("append");
        assert_eq!(len, bytes(&lines).len() as u64);
        drop(journal);

        let (opened, read) = open_from(&path, 0);
        let seqs: Vec<u64> = read.iter().map(|r| r.0).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(opened.last_start, Some(read[2].1));
        assert_eq!(read[2].2, len);
        let last = Uuid::parse_str(&lines[2].event.id).expect("uuid");
        let covered = Covered {
            len,
            tail_start: read[2].1,
            tail: Some((3, last)),
        };
        assert!(is_covered_by(&path, &covered).expect("check"));
        let wrong = Covered {
            tail_start: read[1].1,
            ..covered
        };
        assert!(!is_covered_by(&path, &wrong).expect("check"));
        // From the end of the second line: only the third.
        let (_, read) = open_from(&path, read[1].2);
        assert_eq!(read.iter().map(|r| r.0).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn a_cut_short_last_line_is_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let good = bytes(&[line(1)]);
        let mut content = good.clone();
        content.extend_from_slice(&bytes(&[line(2)])[..40]);
        std::fs::write(&path, &content).expect("write");

        let (opened, read) = open_from(&path, 0);
        assert_eq!(
            opened.repair,
            Some(Repair {
                removed_bytes: 40,
                lines: vec![2],
                rewritten: false,
            })
        );
        assert_eq!(read.len(), 1);
        assert_eq!(opened.journal.len(), good.len() as u64);
        assert_eq!(std::fs::read(&path).expect("read"), good);
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

        let (opened, read) = open_from(&path, 0);
        let repair = opened.repair.expect("repaired");
        assert_eq!((repair.lines, repair.rewritten), (vec![2, 3], true));
        assert_eq!(read.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
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
        let mut read = 0;
        Journal::open(&path, 0, |_, _, _, _| {
            read += 1;
            Ok(())
        })
        .expect("open");
        eprintln!(
            "{} lines, {} MB: {:?}",
            read,
            bytes.len() / 1_000_000,
            started.elapsed()
        );
    }
}
