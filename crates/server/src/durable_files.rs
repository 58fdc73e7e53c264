//! Small files that must survive a crash whole: keys, the master key, credentials.
//!
//! A reader sees either the old file or the new one, never a torn mix, because the new
//! content is written to a temporary sibling, fsynced, renamed over the target, and then
//! the directory is fsynced so the rename itself is durable.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Owner read/write only: these files hold key material.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Owner only: the data directory holds the master key.
pub const PRIVATE_DIRECTORY_MODE: u32 = 0o700;

/// Replaces `path` with `contents` atomically and durably, with mode 0600.
pub fn write_private_file_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temporary_path = temporary_sibling(path);
    // A stale temporary file from a crash would make `create_new` fail; it holds nothing
    // that matters, because the rename never happened.
    match std::fs::remove_file(&temporary_path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut file = create_new_private_file(&temporary_path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary_path, path)?;
    sync_parent_directory(path)
}

/// Creates `path` exclusively with mode 0600, writes `contents` and fsyncs file and
/// directory. Fails with `AlreadyExists` rather than overwrite.
pub fn create_private_file_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = create_new_private_file(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    sync_parent_directory(path)
}

/// Creates the directory (and parents) if missing. A directory this call creates gets
/// mode 0700; an existing one is left as the operator made it.
pub fn create_private_directory(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIRECTORY_MODE);
    }
    builder.create(path)
}

/// The permission bits of `path` (Unix only; elsewhere there is nothing to check).
#[cfg(unix)]
pub fn permission_bits(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn create_new_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Set at creation, so the content is never readable by others, not even briefly.
        options.mode(PRIVATE_FILE_MODE);
    }
    options.open(path)
}

fn temporary_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn sync_parent_directory(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // On Unix a directory is opened read-only and fsynced to persist its entries.
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_with_mode_0600_and_leaves_no_temporary() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("state.json");
        write_private_file_atomically(&path, b"first").expect("first write");
        write_private_file_atomically(&path, b"second").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert_eq!(permission_bits(&path).expect("mode"), 0o600);
        assert!(!temporary_sibling(&path).exists());
    }

    #[test]
    fn atomic_write_survives_a_stale_temporary_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("state.json");
        std::fs::write(temporary_sibling(&path), b"torn").expect("stale temp");
        write_private_file_atomically(&path, b"whole").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"whole");
    }

    #[test]
    fn create_durably_refuses_to_overwrite() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("master.key");
        create_private_file_durably(&path, b"one").expect("create");
        let error = create_private_file_durably(&path, b"two").expect_err("must refuse");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"one");
    }

    #[test]
    fn created_directory_is_private() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("a/b");
        create_private_directory(&path).expect("create");
        assert_eq!(permission_bits(&path).expect("mode"), 0o700);
    }
}
