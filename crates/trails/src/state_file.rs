//! A worker's state file: versioned JSON, the empty state when absent, refused when a
//! newer server wrote it. The crash-safe writes themselves are `opentrail_durable`'s.

use std::path::Path;

use opentrail_durable::read_optional;

/// A worker's state file: versioned JSON, empty when absent.
pub(crate) trait VersionedState: serde::de::DeserializeOwned + Default {
    fn format(&self) -> u32;
    fn with_format(format: u32) -> Self;
}

/// Loads a versioned state file (the empty state when none exists yet), refusing one
/// written by a newer server rather than misreading it. Blocking.
pub(crate) fn load_versioned_state<T: VersionedState>(
    path: &Path,
    current_format: u32,
) -> Result<T, crate::error::TrailsError> {
    let bytes = read_optional(path).map_err(|source| crate::error::TrailsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(bytes) = bytes else {
        return Ok(T::with_format(current_format));
    };
    let state: T =
        serde_json::from_slice(&bytes).map_err(|error| crate::error::TrailsError::Corrupt {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
    if state.format() > current_format {
        return Err(crate::error::TrailsError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "format {} is newer than this server's {current_format}",
                state.format()
            ),
        });
    }
    Ok(state)
}
