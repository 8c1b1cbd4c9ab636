//! Files and directories only their owner may read: the shop's data holds password
//! hashes, purchases and logs. Files are 0600 and directories 0700, whoever creates them
//! (a service, nats-server's log, a copy kept aside); an existing file is narrowed when
//! the service opens it, and the shop's data directory when the stack starts.

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

/// Creates `dir` (and its missing parents) as 0700. An existing directory is left as it
/// is: a file may be put anywhere (`/tmp/users.db`), and its directory is not ours.
pub fn dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates the shop's own data directory as 0700, or makes an existing one 0700 (a
/// checkout's `data/` is 0775). A shared directory (sticky, as `/tmp`) is left alone.
pub fn data_dir(path: &Path) -> io::Result<()> {
    dir(path)?;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o1000 != 0 {
        return Ok(());
    }
    fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
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
        fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
    }

    #[test]
    fn new_ones_are_private_and_existing_directories_are_not_touched() {
        let root = tempfile::tempdir().expect("dir");
        let nested = root.path().join("a/b");
        dir(&nested).expect("created");
        assert_eq!(mode(&nested), DIR_MODE);
        assert_eq!(mode(&root.path().join("a")), DIR_MODE);
        let open = root.path().join("open");
        fs::create_dir(&open).expect("created");
        fs::set_permissions(&open, Permissions::from_mode(0o755)).expect("chmod");
        dir(&open).expect("exists");
        assert_eq!(mode(&open), 0o755, "not ours to narrow");
        data_dir(&open).expect("narrowed");
        assert_eq!(mode(&open), DIR_MODE, "the shop's data directory is");
        let shared = root.path().join("shared");
        fs::create_dir(&shared).expect("created");
        fs::set_permissions(&shared, Permissions::from_mode(0o1777)).expect("chmod");
        data_dir(&shared).expect("left alone");
        assert_eq!(mode(&shared), 0o1777);

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
