//! `purchases.json`: one purchase event per line (JSON Lines) with its stream sequence,
//! appended and fsynced by the appender. Blocking I/O: call from a blocking thread.
//!
//! One process owns this file: several orders instances must each keep their own (the
//! consumer is shared, so each line lands in exactly one of them) or run one writer.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufRead, BufReader, Write},
    path::{Path, PathBuf},
};

use bus_schema::orders::{Article, PurchasedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::index::Index;

/// One line of the file: the event and where it sits in the `ORDERS` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub id: String,
    pub username: String,
    pub article: Article,
    pub purchased_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The stream sequence of the event.
    pub seq: u64,
}

impl Line {
    pub fn new(event: PurchasedEvent, seq: u64) -> Self {
        Self {
            id: event.id,
            username: event.username,
            article: event.article,
            purchased_at: event.purchased_at,
            idempotency_key: event.idempotency_key,
            seq,
        }
    }

    /// The line as written: JSON and a newline.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        serde_json::to_writer(&mut *buf, self).expect("BUG: a line always serialises");
        buf.push(b'\n');
    }
}

/// What [`Journal::open`] had to mend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Bytes of a cut-short last line that were removed.
    pub removed_bytes: u64,
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
    /// Opens (or creates) the file and loads every line into `index`. A last line cut
    /// short by a crash is removed (its event was never acknowledged, so the stream
    /// delivers it again); any other bad line stops start-up with its line number.
    pub fn open(path: &Path, index: &mut Index) -> Result<(Self, Option<Repair>), String> {
        let fail = |err: io::Error| format!("cannot open {}: {err}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(fail)?;
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut buf = Vec::with_capacity(512);
        let mut good: u64 = 0;
        let mut number = 0usize;
        let mut repair = None;
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
                    index.insert(id, &line);
                }
                Ok(None) => {} // a blank line
                Err(_) if at_end(&mut reader).map_err(fail)? => {
                    // The last line is cut short or garbled: a write a crash interrupted.
                    repair = Some(Repair {
                        removed_bytes: read as u64,
                    });
                    break;
                }
                Err(err) => {
                    return Err(format!(
                        "{}:{number}: {err}; fix or remove that line (the event is still in the ORDERS stream)",
                        path.display()
                    ));
                }
            }
            good += read as u64;
        }
        drop(reader);
        if repair.is_some() {
            file.set_len(good).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        Ok((
            Self {
                path: path.to_owned(),
                file,
                len: good,
            },
            repair,
        ))
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

/// The event id and line, `None` for a blank line.
fn parse(raw: &[u8]) -> Result<Option<(Uuid, Line)>, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let line: Line = serde_json::from_slice(raw).map_err(|err| err.to_string())?;
    let id = Uuid::parse_str(&line.id).map_err(|err| format!("bad event id: {err}"))?;
    Ok(Some((id, line)))
}

fn at_end(reader: &mut BufReader<&File>) -> io::Result<bool> {
    Ok(reader.fill_buf()?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64) -> Line {
        Line {
            id: Uuid::now_v7().to_string(),
            username: "victor".into(),
            article: Article {
                id: 1,
                name: "Article 1".into(),
                price: 1000,
            },
            purchased_at: "2026-11-23T10:00:00Z".into(),
            idempotency_key: None,
            seq: n,
        }
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
        let (mut journal, repair) = Journal::open(&path, &mut Index::default()).expect("open");
        assert_eq!(repair, None);
        journal.append(&bytes(&lines)).expect("append");
        drop(journal);

        let mut index = Index::default();
        Journal::open(&path, &mut index).expect("reopen");
        let ids: Vec<String> = index
            .history("victor")
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        assert_eq!(ids, lines.iter().map(|l| l.id.clone()).collect::<Vec<_>>());
        assert_eq!(index.last_seq(), 3);
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
        let (_, repair) = Journal::open(&path, &mut index).expect("open");
        assert_eq!(repair, Some(Repair { removed_bytes: 40 }));
        assert_eq!(std::fs::read(&path).expect("read"), good);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_bad_line_in_the_middle_stops_with_its_line_number() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        let mut content = bytes(&[line(1)]);
        content.extend_from_slice(b"{garbage}\n");
        content.extend_from_slice(&bytes(&[line(3)]));
        std::fs::write(&path, &content).expect("write");
        let err = Journal::open(&path, &mut Index::default()).expect_err("bad line");
        assert!(err.contains("purchases.json:2:"), "{err}");
    }
}
