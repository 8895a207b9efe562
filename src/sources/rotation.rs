//! What the tailer decides from what the file system shows: pure functions of an observation,
//! no I/O. The tailer (`sources::tail`) makes the observations (`fstat`, `stat(path)`, a `pread`
//! of the bytes before its offset) and carries the steps out.
//!
//! Three moments are decided here:
//! - [`classify_before_read`]: are the bytes just before the read offset still the ones read? If
//!   not, the file was truncated and written past the offset again (a refilled `copytruncate`):
//!   reading on would start mid-line in other data.
//! - [`classify_at_eof`]: after reading to the end, did the file shrink below what was read
//!   (truncation), does the path now name another file (rotation), or nothing at all?
//! - [`resume`]: at start, is a saved position still good for the file at the path?

use super::tail::{FileIdentity, Position};

/// Whether the bytes just before the read offset are still the ones read (the fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailCheck {
    /// They are (or nothing was read yet: nothing to compare).
    Intact,
    /// Other bytes are there now.
    Changed,
    /// They cannot be read: the file is shorter than the offset (or the read failed).
    Unreadable,
}

/// What the path names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtPath {
    /// The file being read.
    Same,
    /// Another regular file.
    Other(FileIdentity),
    /// Something that is not a regular file (a FIFO, a device, a directory).
    NotRegular,
    /// Nothing.
    Missing,
    /// `stat` failed otherwise (permissions, a loop of links).
    Unknown,
}

/// The file being read, after reading it to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtEof {
    /// Offset of the first byte not consumed.
    pub offset: u64,
    /// Bytes read past `offset` (an unterminated line).
    pub pending: u64,
    /// The file's size (`fstat`), if known.
    pub len: Option<u64>,
    /// The bytes before `offset`.
    pub tail: TailCheck,
    /// What the path names.
    pub at_path: AtPath,
}

/// What to do next with the file being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read on from the offset.
    Read,
    /// Truncated and written past the offset again: find the copy, then read from the start.
    Refilled,
    /// Shrank below what was read: find the copy, then read from the start.
    Shrank,
    /// The path names another file: read this one to its end, keep it for a grace period as
    /// retired, and follow the new one.
    Replaced,
    /// The path names nothing, or something that cannot be read as a log: keep the open file
    /// (a writer may still append to it) and wait for the path to name a regular file again.
    Vanished,
    /// Nothing changed: wait for the next event.
    Idle,
}

/// Before reading at the offset: read on, or the file was refilled.
pub fn classify_before_read(tail: TailCheck) -> Step {
    match tail {
        TailCheck::Changed => Step::Refilled,
        // A short file is the size check's to judge, after the read finds nothing.
        TailCheck::Intact | TailCheck::Unreadable => Step::Read,
    }
}

/// After reading to the end of the file.
///
/// A file whose size is below what was read shrank — unless the bytes before the offset are
/// still there to read, in which case its size does not count bytes (files in /proc or /sys
/// say 0 or 4096 whatever they hold): that is not a truncation, and taking it for one would
/// read the file from the start at every event.
pub fn classify_at_eof(o: &AtEof) -> Step {
    if o.tail == TailCheck::Changed {
        return Step::Refilled;
    }
    let read_to = o.offset + o.pending;
    let size_uncounted = o.tail == TailCheck::Intact && o.offset > 0 && o.len.is_some_and(|l| l < o.offset);
    if o.len.is_some_and(|l| l < read_to) && !size_uncounted {
        return Step::Shrank;
    }
    match o.at_path {
        AtPath::Other(_) => Step::Replaced,
        AtPath::Missing | AtPath::NotRegular => Step::Vanished,
        AtPath::Same | AtPath::Unknown => Step::Idle,
    }
}

/// What a saved position means for the file found at the path at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The same file, as it was read: continue at the saved offset.
    Continue,
    /// Another file is at the path: the saved one was rotated away while stopped; find it by
    /// identity and read its rest first.
    Rotated,
    /// The same file, but not as it was read; the copy `copytruncate` left may hold the rest.
    Truncated(&'static str),
}

/// Judges a saved position against the file now at the path (`id`, `len`, and the bytes
/// before the saved offset, if the position carries their sum).
pub fn resume(saved: &Position, id: FileIdentity, len: u64, tail: Option<TailCheck>) -> Resume {
    if saved.id != id {
        Resume::Rotated
    } else if len < saved.offset {
        Resume::Truncated("shorter than when last read")
    } else if tail.is_some_and(|t| t != TailCheck::Intact) {
        Resume::Truncated("rewritten (the bytes before the saved offset changed)")
    } else {
        Resume::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: FileIdentity = FileIdentity { dev: 1, ino: 10 };
    const B: FileIdentity = FileIdentity { dev: 1, ino: 11 };

    fn at_eof(offset: u64, pending: u64, len: Option<u64>, tail: TailCheck, at_path: AtPath) -> AtEof {
        AtEof { offset, pending, len, tail, at_path }
    }

    #[test]
    fn before_reading_only_changed_bytes_stop_the_read() {
        assert_eq!(classify_before_read(TailCheck::Intact), Step::Read);
        assert_eq!(classify_before_read(TailCheck::Unreadable), Step::Read);
        assert_eq!(classify_before_read(TailCheck::Changed), Step::Refilled);
    }

    /// Every combination the file system can show at the end of a read.
    #[test]
    fn at_the_end_of_a_read() {
        use AtPath::*;
        use Step::*;
        use TailCheck::*;
        let table = [
            // Grown or unchanged, same file at the path: wait.
            (at_eof(100, 0, Some(100), Intact, Same), Idle),
            (at_eof(100, 5, Some(105), Intact, Same), Idle),
            // Truncated to nothing, or to below the offset: shrank.
            (at_eof(100, 0, Some(0), Unreadable, Same), Shrank),
            (at_eof(100, 0, Some(40), Unreadable, Same), Shrank),
            // Truncated inside the unterminated line: what was pending is gone.
            (at_eof(100, 20, Some(110), Intact, Same), Shrank),
            // Refilled past the offset with other bytes.
            (at_eof(100, 0, Some(300), Changed, Same), Refilled),
            // A size that counts no bytes (/proc, /sys): the bytes are there, nothing shrank.
            (at_eof(100, 0, Some(0), Intact, Same), Idle),
            (at_eof(5000, 0, Some(4096), Intact, Same), Idle),
            // An unknown size decides nothing.
            (at_eof(100, 0, None, Unreadable, Same), Idle),
            // Rotation: the path names another file, or nothing, or a FIFO.
            (at_eof(100, 0, Some(100), Intact, Other(B)), Replaced),
            (at_eof(100, 0, Some(100), Intact, Missing), Vanished),
            (at_eof(100, 0, Some(100), Intact, NotRegular), Vanished),
            (at_eof(100, 0, Some(100), Intact, Unknown), Idle),
            // A truncation is handled before a rotation: the copy's rest comes first.
            (at_eof(100, 0, Some(0), Unreadable, Other(B)), Shrank),
            // Nothing read yet: an empty file is not a truncation.
            (at_eof(0, 0, Some(0), Intact, Same), Idle),
        ];
        for (o, want) in table {
            assert_eq!(classify_at_eof(&o), want, "{o:?}");
        }
    }

    #[test]
    fn resuming_a_saved_position() {
        let pos = Position { id: A, offset: 100, line: 7, tail: None, head: None };
        assert_eq!(resume(&pos, A, 100, None), Resume::Continue);
        assert_eq!(resume(&pos, A, 500, Some(TailCheck::Intact)), Resume::Continue);
        assert_eq!(resume(&pos, B, 500, Some(TailCheck::Intact)), Resume::Rotated);
        assert!(matches!(resume(&pos, A, 99, None), Resume::Truncated(w) if w.contains("shorter")));
        assert!(matches!(resume(&pos, A, 500, Some(TailCheck::Changed)), Resume::Truncated(w) if w.contains("rewritten")));
        assert!(matches!(resume(&pos, A, 500, Some(TailCheck::Unreadable)), Resume::Truncated(_)));
    }
}
