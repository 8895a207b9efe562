//! Reading the small files configuration lives in (check files, `config.sh`) so that no file
//! can block the reader or make it read without end.
//!
//! The opening is [`crate::regular_file::open`], the one the tailer uses: `O_PATH` and
//! `fstat` first (a FIFO's `open` would block, a device's `open` runs its driver), then the same
//! inode re-opened non-blocking. Here the read is also bounded by [`MAX_BYTES`], a link can be
//! refused where none belongs, and every refusal is counted ([`refused`]).

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::regular_file::{self, OpenError};

/// The most bytes a check file or `config.sh` may have. Mender's are well under 4 KiB; the
/// bound only has to stop a file that never ends.
pub const MAX_BYTES: u64 = 256 * 1024;

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// How many files this process refused to read (not a regular file, too large, a link where
/// none belongs, a link loop).
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Whether the path's last component may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it (`enabled/` links, a `config.sh` linked to a data partition).
    Follow,
    /// Refuse it: a file in `available/` is the check itself.
    Refuse,
}

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// It does not exist (or a link points to nothing).
    NotFound,
    /// It is not a small regular file; the message says what it is.
    Refused(String),
    /// Opening or reading failed.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("does not exist"),
            ReadError::Refused(m) => f.write_str(m),
            ReadError::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

/// A refusal, counted.
pub(super) fn refuse(message: String) -> ReadError {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    ReadError::Refused(message)
}

fn io_error(e: io::Error) -> ReadError {
    match e.raw_os_error() {
        _ if e.kind() == io::ErrorKind::NotFound => ReadError::NotFound,
        Some(libc::ELOOP) => refuse("is a loop of symbolic links; not read".into()),
        _ => ReadError::Io(e),
    }
}

/// Reads the small regular file at `path`: never blocks, never reads more than [`MAX_BYTES`].
pub fn read(path: &Path, links: Links) -> Result<Vec<u8>, ReadError> {
    if links == Links::Refuse && path.is_symlink() {
        return Err(refuse("is a symbolic link, not a regular file; not read".into()));
    }
    let (file, meta) = regular_file::open(path).map_err(|e| match e {
        OpenError::NotFound => ReadError::NotFound,
        OpenError::NotRegular(what) => refuse(format!("is {what}, not a regular file; not read")),
        OpenError::Io(e) => io_error(e),
        OpenError::NoDescriptor(why) => ReadError::Io(io::Error::other(why)),
    })?;
    let too_big = |len: u64| refuse(format!("is {len} bytes, more than the {MAX_BYTES} a configuration file may have; not read"));
    if meta.len() > MAX_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES + 1).read_to_end(&mut buf).map_err(io_error)?;
    if buf.len() as u64 > MAX_BYTES {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_with(r: Result<Vec<u8>, ReadError>) -> String {
        match r {
            Err(ReadError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reads_only_small_regular_files() {
        let tmp = crate::testutil::TempDir::new("file");
        let f = tmp.path().join("config.sh");
        std::fs::write(&f, "A=1\n").unwrap();
        assert_eq!(read(&f, Links::Refuse).unwrap(), b"A=1\n");
        let before = refused();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(refused_with(read(&fifo, Links::Follow)), "is a FIFO, not a regular file; not read");
        assert!(refused_with(read(Path::new("/dev/zero"), Links::Follow)).starts_with("is a character device"));
        assert!(refused_with(read(tmp.path(), Links::Follow)).starts_with("is a directory"));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(read(&link, Links::Follow).unwrap(), b"A=1\n");
        assert!(refused_with(read(&link, Links::Refuse)).starts_with("is a symbolic link"));
        let l1 = tmp.path().join("l1");
        std::os::unix::fs::symlink(&l1, &l1).unwrap();
        assert_eq!(refused_with(read(&l1, Links::Follow)), "is a loop of symbolic links; not read");
        let big = tmp.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_BYTES + 1).unwrap();
        assert!(refused_with(read(&big, Links::Follow)).contains("more than the 262144"));
        std::fs::File::create(&big).unwrap().set_len(MAX_BYTES).unwrap();
        assert_eq!(read(&big, Links::Follow).unwrap().len() as u64, MAX_BYTES);
        assert!(matches!(read(&tmp.path().join("nope"), Links::Follow), Err(ReadError::NotFound)));
        std::os::unix::fs::symlink(tmp.path().join("nope"), tmp.path().join("dangling")).unwrap();
        assert!(matches!(read(&tmp.path().join("dangling"), Links::Follow), Err(ReadError::NotFound)));
        // Tests running beside this one may refuse files too.
        assert!(refused() - before >= 6);
    }
}
