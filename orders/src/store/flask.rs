//! The Flask original kept `purchases.json` as one object, `{"victor": ["Article 1",
//! ...]}`. On first start such a file is moved aside and its purchases become events,
//! so that the people of the original keep their history.
//!
//! The file moves through two names, so a crash half-way resumes where it stopped:
//! `purchases.json.flask-converting` while its events are published, then
//! `purchases.json.flask-backup`, the backup kept for good. Event ids are derived from
//! the file, so events published before a crash are recognised and not recorded twice.

use super::sibling;
use std::{
    collections::BTreeMap,
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use bus_schema::{
    orders::{Article, PurchasedEvent},
    users::Username,
};
use uuid::Uuid;

use crate::{domain::catalog::Catalog, service::Orders};

/// The original's format: each user's article names, oldest first.
type FlaskPurchases = BTreeMap<String, Vec<String>>;

/// Where a conversion in progress keeps the original file.
pub fn converting_path(path: &Path) -> PathBuf {
    sibling(path, ".flask-converting")
}

/// Where the original file is kept once converted.
pub fn backup_path(path: &Path) -> PathBuf {
    sibling(path, ".flask-backup")
}

/// Moves a Flask-format `path` aside for conversion. Returns the file to convert: the
/// one just moved, or one a crash left half-converted. Blocking.
pub fn take_over(path: &Path) -> Result<Option<PathBuf>, String> {
    let converting = converting_path(path);
    if converting.exists() {
        return Ok(Some(converting));
    }
    let Ok(file) = File::open(path) else {
        return Ok(None);
    };
    if serde_json::from_reader::<_, FlaskPurchases>(BufReader::new(file)).is_err() {
        return Ok(None); // JSON Lines (ours) or empty
    }
    std::fs::rename(path, &converting)
        .map_err(|err| format!("cannot move the original {} aside: {err}", path.display()))?;
    tracing::info!(from = %path.display(), to = %converting.display(), "found a purchases file of the Flask original; converting it");
    Ok(Some(converting))
}

/// The events of a Flask-format file, in the file's order for each user. Ids and times
/// derive from the file (its modification time), so a second run makes the same
/// events. Names that break the username rules are skipped with a warning; articles
/// no longer in the catalogue keep their name with id 0 and price 0. Blocking.
pub fn events(converting: &Path, catalog: &Catalog) -> Result<Vec<PurchasedEvent>, String> {
    let fail = |err: &dyn std::fmt::Display| format!("cannot read {}: {err}", converting.display());
    let file = File::open(converting).map_err(|err| fail(&err))?;
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|err| fail(&err))?;
    let purchases: FlaskPurchases =
        serde_json::from_reader(BufReader::new(file)).map_err(|err| fail(&err))?;
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let millis = u64::try_from(nanos / 1_000_000).unwrap_or(0);
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::try_from(nanos).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|err| fail(&err))?;

    let mut events = Vec::new();
    for (raw_name, names) in purchases {
        let Ok(username) = Username::parse(&raw_name) else {
            tracing::warn!(user = %raw_name, "skipping a user of the original whose name breaks the rules");
            continue;
        };
        for (n, name) in names.into_iter().enumerate() {
            let article = catalog.by_name(&name).map_or_else(
                || Article {
                    id: 0,
                    name: name.clone(),
                    price: 0,
                },
                |a| (**a).clone(),
            );
            let seed = format!("{}\u{0}{n}\u{0}{name}", username.as_str());
            events.push(PurchasedEvent {
                id: derived_v7(millis, seed.as_bytes()).to_string(),
                username: username.as_str().to_owned(),
                article,
                purchased_at: at.clone(),
                idempotency_key: None,
            });
        }
    }
    Ok(events)
}

/// Publishes the events of `converting` that are not recorded yet, waits for each to
/// reach the file, then keeps the original as the backup.
pub async fn convert(orders: &Orders, converting: PathBuf, path: &Path) -> Result<usize, String> {
    let catalog = orders.catalog().clone();
    let source = converting.clone();
    let events = tokio::task::spawn_blocking(move || events(&source, &catalog))
        .await
        .map_err(|err| err.to_string())??;
    let mut converted = 0;
    for event in &events {
        orders
            .record(event)
            .await
            .map_err(|err| format!("converting the original's purchases: {err}"))?;
        converted += 1;
    }
    let backup = backup_path(path);
    tokio::fs::rename(&converting, &backup)
        .await
        .map_err(|err| format!("cannot keep the backup {}: {err}", backup.display()))?;
    tracing::info!(converted, backup = %backup.display(), "converted the original's purchases");
    Ok(converted)
}

/// A UUIDv7 for time `millis` whose other bits come from `seed` (FNV-1a), so that the
/// same input always gives the same id.
fn derived_v7(millis: u64, seed: &[u8]) -> Uuid {
    let fnv = |basis: u64| {
        seed.iter().fold(basis, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let mut bytes = [0u8; 10];
    bytes[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_be_bytes());
    bytes[8..].copy_from_slice(&fnv(0x6c62_272e_07bb_0142).to_be_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_version_7_uuids() {
        let a = derived_v7(1_700_000_000_000, b"victor\x000\x00Article 1");
        assert_eq!(
            a,
            derived_v7(1_700_000_000_000, b"victor\x000\x00Article 1")
        );
        assert_ne!(
            a,
            derived_v7(1_700_000_000_000, b"victor\x001\x00Article 1")
        );
        assert_eq!(a.get_version_num(), 7);
    }

    #[test]
    fn a_flask_file_becomes_events_in_order_and_json_lines_are_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("purchases.json");
        std::fs::write(
            &path,
            r#"{"Victor": ["Article 2", "Article 1", "Gone"], "bad name": ["Article 1"]}"#,
        )
        .expect("write");
        let converting = take_over(&path).expect("ok").expect("a flask file");
        assert!(!path.exists());
        let events = events(&converting, &Catalog::original()).expect("events");
        let names: Vec<(&str, &str, u32)> = events
            .iter()
            .map(|e| (e.username.as_str(), e.article.name.as_str(), e.article.id))
            .collect();
        assert_eq!(
            names,
            [
                ("victor", "Article 2", 2),
                ("victor", "Article 1", 1),
                ("victor", "Gone", 0)
            ]
        );

        let lines = dir.path().join("other.json");
        std::fs::write(
            &lines,
            "{\"id\":\"x\",\"seq\":1}\n{\"id\":\"y\",\"seq\":2}\n",
        )
        .expect("write");
        assert_eq!(take_over(&lines).expect("ok"), None);
        assert!(lines.exists());
    }
}
