//! Opening a file that must be a regular file, without ever blocking or touching anything else.
//!
//! The agent runs as root and follows paths in directories that other users may own. A plain
//! `open` of a FIFO blocks until a writer comes; reading a device (`/dev/zero`, `/dev/urandom`,
//! `/dev/kmsg`) never ends or blocks; and merely opening some devices acts (`/dev/watchdog`
//! arms the watchdog, a tape rewinds). So the path is first opened with `O_PATH`, which reaches
//! the inode without calling any driver; `fstat` on that descriptor says what it is; only a
//! regular file is then opened for reading, through `/proc/self/fd`, which is the same inode
//! whatever the path names by then (no window between the check and the use). Without `/proc`,
//! the path is opened again with `O_NONBLOCK` and must still be the same inode.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Why a path could not be opened as a regular file.
#[derive(Debug)]
pub enum OpenError {
    /// Nothing at the path.
    NotFound,
    /// Something that is not a regular file: what it is.
    NotRegular(&'static str),
    /// `open` or `fstat` failed otherwise.
    Io(io::Error),
    /// A descriptor was had, but checks may not hold it (see [`crate::fdlimit`]).
    NoDescriptor(String),
}

impl OpenError {
    /// Whether there was no file descriptor to be had (try again later).
    pub fn is_exhaustion(&self) -> bool {
        match self {
            OpenError::NoDescriptor(_) => true,
            OpenError::Io(e) => crate::fdlimit::is_exhaustion(e),
            _ => false,
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NotFound => write!(f, "does not exist"),
            OpenError::NotRegular(kind) => write!(f, "is {kind}, not a regular file; only regular files are read"),
            OpenError::Io(e) => write!(f, "{e}"),
            OpenError::NoDescriptor(why) => write!(f, "{why}"),
        }
    }
}

/// What a file that is not regular is, for messages.
pub fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

fn open_with(path: &Path, flags: i32) -> Result<File, OpenError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| if e.kind() == io::ErrorKind::NotFound { OpenError::NotFound } else { OpenError::Io(e) })
}

/// Opens `path` for reading if it is a regular file; anything else is refused without being
/// opened for reading.
pub fn open(path: &Path) -> Result<(File, Metadata), OpenError> {
    // O_NONBLOCK is ignored with O_PATH; it is there for qemu-user (the ARM tests), which drops
    // O_PATH from a musl binary's open: the FIFO must not block there either.
    let handle = open_with(path, libc::O_PATH | libc::O_NONBLOCK)?;
    let meta = handle.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular(kind(&meta)));
    }
    let same = |m: &Metadata| m.dev() == meta.dev() && m.ino() == meta.ino();
    let proc_path = format!("/proc/self/fd/{}", handle.as_raw_fd());
    let file = match open_with(Path::new(&proc_path), libc::O_NONBLOCK) {
        Ok(f) => f,
        Err(_) => open_with(path, libc::O_NONBLOCK)?,
    };
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() || !same(&meta) {
        return Err(OpenError::Io(io::Error::other("replaced while being opened")));
    }
    Ok((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_devices_are_refused_at_once() {
        let tmp = crate::testutil::TempDir::new("regular");
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(open(&fifo), Err(OpenError::NotRegular("a FIFO"))), "and it did not block");
        assert!(matches!(open(Path::new("/dev/zero")), Err(OpenError::NotRegular("a character device"))));
        assert!(matches!(open(tmp.path()), Err(OpenError::NotRegular("a directory"))));
        assert!(matches!(open(&tmp.path().join("none")), Err(OpenError::NotFound)));
        let file = tmp.path().join("log");
        std::fs::write(&file, b"x\n").unwrap();
        assert_eq!(open(&file).map(|(_, m)| m.len()).ok(), Some(2));
    }
}
