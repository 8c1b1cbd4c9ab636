//! Secrets made on first start and kept in a private file (mode 0600, its directory
//! 0700), such as auth's signing key and the stack's NATS passwords. Blocking I/O: call
//! from a blocking thread or before the runtime starts.

use std::{
    fs::{self, OpenOptions},
    io::{ErrorKind, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

/// The contents of `path`, or, when it does not exist, `make()` written there first.
/// Returns the contents and whether they were just made.
///
/// The new file is written under a temporary name and then linked into place, so a
/// crash never leaves half a secret, and of two processes starting together the second
/// reads the first one's secret.
pub fn load_or_create(
    path: &Path,
    make: impl FnOnce() -> String,
) -> Result<(String, bool), String> {
    match fs::read_to_string(path) {
        Ok(text) => return Ok((text, false)),
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    // Secrets live in a directory of their own, narrowed too (unless shared, as /tmp).
    let _ = crate::private::data_dir(dir);

    let contents = make();
    let name = path
        .file_name()
        .map_or_else(|| "secret".into(), |n| n.to_string_lossy());
    let temp = dir.join(format!(".{name}.{}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        });
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(format!("cannot write {}: {err}", temp.display()));
    }
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((contents, true)),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => fs::read_to_string(path)
            .map(|text| (text, false))
            .map_err(|err| format!("cannot read {}: {err}", path.display())),
        Err(err) => Err(format!("cannot create {}: {err}", path.display())),
    }
}

/// `n` random bytes in hex.
pub fn random_hex(n: usize) -> String {
    crate::random::hex(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_is_made_once_private_and_then_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("secrets/key");
        let (made, new) = load_or_create(&path, || "one".into()).expect("made");
        assert_eq!((made.as_str(), new), ("one", true));
        let mode = fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, new) = load_or_create(&path, || "two".into()).expect("read");
        assert_eq!((again.as_str(), new), ("one", false));
    }
}
