//! Walking a local source: the one walk behind an import's lister and
//! [`crate::list_local_files`] (`opentrail ingest`), so both commands see the same files.
//!
//! Depth first, entries in name order, so runs and their progress are repeatable. Links
//! are followed: a linked file or folder is walked like a real one, and a folder reached
//! twice (a link back up the tree) is walked once. Hidden folders below the source
//! (`.git`, `.cache`) are not entered; the source itself is walked whatever its name.
//! Sockets, FIFOs and devices are passed over: nobody stores logs in them.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io;
use std::path::Path;

use crate::source::relative_path;

/// One regular file the walk found.
pub(crate) struct LocalFile<'a> {
    /// Below the canonical source: what is classified and opened.
    pub path: &'a Path,
    /// The source as the user wrote it, joined with `relative_path`: what is printed.
    pub display_path: String,
    /// Below the source, '/'-separated: what a checkpoint records.
    pub relative_path: String,
    pub metadata: &'a Metadata,
    /// The source itself, named on the command line, rather than a file found in it.
    pub named_explicitly: bool,
}

/// What the walk hands its visitor.
pub(crate) enum Visit<'a> {
    File(LocalFile<'a>),
    /// A folder or entry that could not be read; the walk goes on without it.
    Unlistable {
        display_path: String,
        error: io::Error,
    },
}

/// Whether to keep walking.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Walks the source `given` (resolved to `canonical`), handing every regular file and
/// every listing error to `visit`, until the walk ends or `visit` says stop.
pub(crate) fn walk_local(
    given: &Path,
    canonical: &Path,
    visit: &mut dyn FnMut(Visit<'_>) -> Flow,
) -> Flow {
    let walk = Walk {
        given,
        root: canonical,
        visit,
        visited_directories: HashSet::new(),
    };
    walk.run()
}

struct Walk<'w> {
    given: &'w Path,
    root: &'w Path,
    visit: &'w mut dyn FnMut(Visit<'_>) -> Flow,
    /// (device, inode) of every folder entered: a link back up the tree would otherwise be
    /// walked forever.
    visited_directories: HashSet<(u64, u64)>,
}

impl Walk<'_> {
    fn run(mut self) -> Flow {
        let metadata = match std::fs::metadata(self.root) {
            Ok(metadata) => metadata,
            Err(error) => {
                let display_path = self.given.display().to_string();
                return (self.visit)(Visit::Unlistable {
                    display_path,
                    error,
                });
            }
        };
        if metadata.is_file() {
            return (self.visit)(Visit::File(LocalFile {
                path: self.root,
                display_path: self.given.display().to_string(),
                relative_path: relative_path(self.root, self.root),
                metadata: &metadata,
                named_explicitly: true,
            }));
        }
        let root = self.root;
        self.walk_directory(root)
    }

    fn display(&self, path: &Path) -> String {
        if path == self.root {
            return self.given.display().to_string();
        }
        self.given
            .join(relative_path(self.root, path))
            .display()
            .to_string()
    }

    fn unlistable(&mut self, path: &Path, error: io::Error) -> Flow {
        let display_path = self.display(path);
        (self.visit)(Visit::Unlistable {
            display_path,
            error,
        })
    }

    fn walk_directory(&mut self, directory: &Path) -> Flow {
        use std::os::unix::fs::MetadataExt as _;
        match std::fs::metadata(directory) {
            Ok(metadata) => {
                if !self
                    .visited_directories
                    .insert((metadata.dev(), metadata.ino()))
                {
                    return Flow::Continue;
                }
            }
            Err(error) => return self.unlistable(directory, error),
        }
        let entries = match std::fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) => return self.unlistable(directory, error),
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(error) => {
                    if matches!(self.unlistable(directory, error), Flow::Stop) {
                        return Flow::Stop;
                    }
                }
            }
        }
        paths.sort();
        for path in paths {
            // Follows links: a linked file or folder is walked like a real one.
            let metadata = match std::fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(error) => {
                    if matches!(self.unlistable(&path, error), Flow::Stop) {
                        return Flow::Stop;
                    }
                    continue;
                }
            };
            let flow = if metadata.is_dir() {
                if is_hidden(&path) {
                    Flow::Continue
                } else {
                    self.walk_directory(&path)
                }
            } else if metadata.is_file() {
                let file = LocalFile {
                    path: &path,
                    display_path: self.display(&path),
                    relative_path: relative_path(self.root, &path),
                    metadata: &metadata,
                    named_explicitly: false,
                };
                (self.visit)(Visit::File(file))
            } else {
                Flow::Continue
            };
            if matches!(flow, Flow::Stop) {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.as_encoded_bytes().starts_with(b"."))
}
