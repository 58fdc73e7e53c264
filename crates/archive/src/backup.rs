//! A copy of an archive that an archiver may be writing to, for `opentrail backup`.

use std::path::Path;

use crate::archiver::{ArchiveState, STATE_FILE_NAME, read_state, write_state};
use crate::error::ArchiveError;
use crate::files::{self, CONTROL_DIR_NAME};

/// Copy attempts: a compaction may remove a part file while it is being copied.
const ATTEMPTS: usize = 5;

/// Copies the archive in `source` into `destination`: its state first, then the part
/// files that state counts as sealed. A seal in progress is left out (its files and its
/// plan), so the copy never names a file it lacks; the restored archiver seals that range
/// again. Returns where the copied state ends, the seq the archive's store cursor must
/// be set to in a copy of the store; `None` when there is no archive.
pub fn backup_archive(source: &Path, destination: &Path) -> Result<Option<u64>, ArchiveError> {
    let state_path = source.join(CONTROL_DIR_NAME).join(STATE_FILE_NAME);
    for _ in 0..ATTEMPTS {
        let Some(state) = read_state(&state_path)? else {
            return Ok(None);
        };
        if destination.exists() {
            std::fs::remove_dir_all(destination)
                .map_err(|error| ArchiveError::io(destination, error))?;
        }
        let control_dir = destination.join(CONTROL_DIR_NAME);
        files::create_dir_durably(&control_dir)?;
        write_state(
            &control_dir.join(STATE_FILE_NAME),
            &ArchiveState {
                sealing: None,
                ..state
            },
        )?;
        if copy_sealed_parts(source, destination, state.archived_through_seq)? {
            return Ok(Some(state.archived_through_seq));
        }
    }
    Err(ArchiveError::Inconsistent {
        path: source.to_path_buf(),
        detail: format!("part files kept disappearing while {ATTEMPTS} copies were taken"),
    })
}

/// Copies every part file ending at or before `through`; false when one vanished.
fn copy_sealed_parts(
    source: &Path,
    destination: &Path,
    through: u64,
) -> Result<bool, ArchiveError> {
    for part in files::list_all_part_files(source)? {
        if part.last_seq > through {
            continue;
        }
        let relative = part.path.strip_prefix(source).unwrap_or(&part.path);
        let target = destination.join(relative);
        if let Some(parent) = target.parent() {
            files::create_dir_durably(parent)?;
        }
        match opentrail_durable::copy_durably(&part.path, &target) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(ArchiveError::io(&part.path, error)),
        }
    }
    Ok(true)
}
