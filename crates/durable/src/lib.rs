//! Crash-safe file primitives, shared by every crate that keeps state on disk (the store,
//! the archive, trails, import, the server's keys, the recorder's queue).
//!
//! A replaced file is written to a temporary sibling (`NAME.tmp`), fsynced, renamed over
//! the target, and then the directory is fsynced so the rename itself is durable: a
//! reader sees the old content or the new, never a mix. A stale temporary left by a crash
//! is overwritten, never read. Errors are plain `io::Error`s; callers add the path and
//! their own error type.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Owner read/write only: files that hold key material or secrets.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Owner only: directories that hold such files.
pub const PRIVATE_DIRECTORY_MODE: u32 = 0o700;

/// Who may read a file this crate creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The process's umask decides.
    Default,
    /// Mode 0600, set at creation so the content is never readable by others.
    Private,
}

/// Replaces `path` with `contents` atomically and durably.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace(path, contents, Access::Default, true)
}

/// [`write_atomically`] with mode 0600.
pub fn write_private_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    replace(path, contents, Access::Private, true)
}

/// Replaces `path` with `contents` atomically; with `durable`, the content and the
/// rename are on disk when this returns (without, a crash may leave the old content, never
/// a mix).
pub fn replace(path: &Path, contents: &[u8], access: Access, durable: bool) -> io::Result<()> {
    let temporary_path = temporary_sibling(path);
    // A stale temporary from a crash holds nothing that matters: its rename never happened.
    remove_if_present(&temporary_path)?;
    let mut file = create_new(&temporary_path, access)?;
    file.write_all(contents)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(&temporary_path, path)?;
    if durable {
        sync_parent(path)?;
    }
    Ok(())
}

/// Creates `path` exclusively with mode 0600, writes `contents` and fsyncs file and
/// directory. Fails with `AlreadyExists` rather than overwrite.
pub fn create_private_file_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = create_new(path, Access::Private)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    sync_parent(path)
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

/// Creates a directory (and parents) and makes its entry durable in its parent.
pub fn create_directory_durably(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    sync_parent(path)
}

/// Appends `contents` to `path` (created if missing) and fsyncs it, and the directory when
/// the file is new.
pub fn append_durably(path: &Path, contents: &[u8]) -> io::Result<()> {
    let existed = path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if !existed {
        sync_parent(path)?;
    }
    Ok(())
}

/// Copies `from` to `to` and fsyncs the copy; the bytes copied. A missing `from` is the
/// `NotFound` of the copy itself, so callers can tell a source that vanished.
pub fn copy_durably(from: &Path, to: &Path) -> io::Result<u64> {
    let bytes = std::fs::copy(from, to)?;
    File::open(to)?.sync_all()?;
    Ok(bytes)
}

/// Fsyncs a file another component wrote, and its directory entry.
pub fn sync_file_and_parent(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    sync_parent(path)
}

/// Fsyncs the directory holding `path`, making a create, rename or removal durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_directory(parent),
        _ => sync_directory(Path::new(".")),
    }
}

/// Fsyncs a directory (on Unix, opened read-only) so its entries are durable.
pub fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Removes a file; an absent one is fine (a crash may have removed it already).
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

/// The name a file is written under before its atomic rename: `NAME.tmp`.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The permission bits of `path`.
#[cfg(unix)]
pub fn permission_bits(path: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

fn create_new(path: &Path, access: Access) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if access == Access::Private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_with_mode_0600_and_leaves_no_temporary() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("state.json");
        write_private_atomically(&path, b"first").expect("first write");
        write_private_atomically(&path, b"second").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert_eq!(permission_bits(&path).expect("mode"), 0o600);
        assert!(!temporary_sibling(&path).exists());
    }

    #[test]
    fn atomic_write_survives_a_stale_temporary_file() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("state.json");
        std::fs::write(temporary_sibling(&path), b"torn").expect("stale temp");
        write_atomically(&path, b"whole").expect("write");
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

    #[test]
    fn appends_accumulate_and_absent_files_read_as_none() {
        let directory = tempfile::tempdir().expect("temp dir");
        let path = directory.path().join("log.ndjson");
        assert_eq!(read_optional(&path).expect("read"), None);
        append_durably(&path, b"a\n").expect("append");
        append_durably(&path, b"b\n").expect("append");
        assert_eq!(
            read_optional(&path).expect("read"),
            Some(b"a\nb\n".to_vec())
        );
        remove_if_present(&path).expect("remove");
        remove_if_present(&path).expect("removing twice is fine");
    }
}
