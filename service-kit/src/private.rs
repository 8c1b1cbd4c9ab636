//! Files and directories only their owner may read: the shop's data holds password
//! hashes, purchases and logs. Files are 0600 and directories 0700, whoever creates them
//! (a service, nats-server's log, a copy kept aside), and an existing one is narrowed
//! when the service opens it.

use std::{
    fs::{self, DirBuilder, OpenOptions, Permissions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

/// Mode of a data file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a data directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and its missing parents) as 0700; an existing `dir` is made 0700.
pub fn dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// The directory `path` lives in, made private ([`dir`]).
pub fn parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => dir(parent),
        None => Ok(()),
    }
}

/// `options` that create a file as 0600.
pub fn options(options: &mut OpenOptions) -> &mut OpenOptions {
    options.mode(FILE_MODE)
}

/// Makes an existing file 0600; a missing one is no error.
pub fn file(path: &Path) -> io::Result<()> {
    match fs::set_permissions(path, Permissions::from_mode(FILE_MODE)) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_ones_are_private() {
        let root = tempfile::tempdir().expect("dir");
        let nested = root.path().join("a/b");
        dir(&nested).expect("created");
        assert_eq!(mode(&nested), DIR_MODE);
        assert_eq!(mode(&root.path().join("a")), DIR_MODE);

        let path = nested.join("f");
        options(OpenOptions::new().create(true).append(true))
            .open(&path)
            .expect("created");
        assert_eq!(mode(&path), FILE_MODE);
        fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
        file(&path).expect("narrowed");
        assert_eq!(mode(&path), FILE_MODE);
        file(&nested.join("missing")).expect("no error");
    }
}
