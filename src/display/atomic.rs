//! Writing a file atomically: readers (the till's display program, an image viewer) see the
//! old content or the new, never a half-written file, and the new content survives a power cut
//! once the call returns.
//!
//! The bytes go to a hidden temporary file in the same directory first; that file is fsynced,
//! renamed over the target (atomic on POSIX), and the directory is fsynced so the rename is
//! durable. On failure the temporary file is removed. This module knows nothing of what the
//! bytes are.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::DisplayError;

/// Writes `bytes` to `path` atomically and durably.
///
/// # Errors
///
/// [`DisplayError::Io`] naming `path` when any file operation fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DisplayError> {
    write_atomic_then(path, bytes, || {})
}

/// [`write_atomic`], calling `visible` as soon as readers see the new content (after the
/// rename, before the directory's fsync that makes the rename survive a power cut).
///
/// # Errors
///
/// [`DisplayError::Io`] naming `path` when any file operation fails.
pub fn write_atomic_then(
    path: &Path,
    bytes: &[u8],
    visible: impl FnOnce(),
) -> Result<(), DisplayError> {
    let io_error = |source| DisplayError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = parent_dir(path);
    let file_name = path.file_name().ok_or_else(|| {
        io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let mut temp = TempFile::create(dir, file_name).map_err(io_error)?;
    temp.write_synced(bytes).map_err(io_error)?;
    temp.persist(path).map_err(io_error)?;
    visible();
    sync_dir(dir).map_err(io_error)
}

/// The directory holding `path`; the current directory for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Makes temporary file names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A hidden temporary file next to the target, removed on drop unless it
/// was renamed into place.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates a new, empty temporary file in `dir` named after `target_name`.
    fn create(dir: &Path, target_name: &std::ffi::OsStr) -> io::Result<Self> {
        // A name can only clash with a leftover of a crashed process that had
        // the same process id, so a few attempts are plenty.
        let mut last_error = None;
        for _ in 0..8 {
            let path = dir.join(temp_name(target_name));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file: Some(file),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free temporary file name")))
    }

    /// Writes `bytes`, flushes them to disk and closes the file.
    fn write_synced(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the temporary file is already closed"))?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    /// Renames the file over `target`; after that, dropping it removes nothing.
    fn persist(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            // Best effort: the write already failed and that error is reported.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The hidden temporary name for `target_name`: `.NAME.PID-N.tmp`.
fn temp_name(target_name: &std::ffi::OsStr) -> OsString {
    let mut name = OsString::from(".");
    name.push(target_name);
    let count = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".{}-{count}.tmp", std::process::id()));
    name
}

/// Flushes the directory entry of a rename to disk.
///
/// Some file systems do not support syncing a directory; there the rename is
/// as durable as it can be made, so that is not an error.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|handle| handle.sync_all()) {
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Directories cannot be synced on this platform; the rename is left as it is.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("lists")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("frame.png");
        fs::write(&path, b"old").expect("writes the old file");
        write_atomic(&path, b"new content").expect("writes");
        assert_eq!(fs::read(&path).expect("reads"), b"new content");
        write_atomic(&path, b"again").expect("writes again");
        assert_eq!(fs::read(&path).expect("reads"), b"again");
        assert_eq!(entries(dir.path()), vec!["frame.png".to_owned()]);
    }

    #[test]
    fn writing_into_a_missing_directory_is_an_io_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing").join("frame.png");
        let error = write_atomic(&path, b"x").expect_err("fails");
        assert!(matches!(&error, DisplayError::Io { path: p, .. } if *p == path));
        assert!(error.to_string().contains(&path.display().to_string()));
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn temporary_names_are_hidden_and_unique() {
        let a = temp_name(std::ffi::OsStr::new("display.png"));
        let b = temp_name(std::ffi::OsStr::new("display.png"));
        assert_ne!(a, b);
        let a = a.to_string_lossy().into_owned();
        assert!(a.starts_with(".display.png.") && a.ends_with(".tmp"), "{a}");
    }
}
