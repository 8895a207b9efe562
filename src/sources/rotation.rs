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
//! - [`backlog`]: once the file that was being read is found among the rotated files, which
//!   files were rotated after it (while the agent was stopped, or within one reader stall) and
//!   must be read too, in the order they were written.

use std::path::PathBuf;
use std::time::SystemTime;

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

/// At most this many files rotated in between are read; older ones past it are skipped, named
/// in a warning and counted (`rotated_files_skipped`).
pub const MAX_BACKLOG: usize = 16;

/// Compressed rotated files: not read.
const COMPRESSED: [&str; 6] = [".gz", ".xz", ".bz2", ".zst", ".lz4", ".Z"];

/// A file beside the log (in its directory or an `olddir` in it) as `stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Where it is.
    pub path: PathBuf,
    /// Its identity.
    pub id: FileIdentity,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub mtime: SystemTime,
}

/// How old a rotated file is, by what its name says (`name_age`): a total order, younger
/// greater.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameAge {
    /// `log.N` (logrotate's default): the higher N, the older.
    Numbered(std::cmp::Reverse<u64>),
    /// Any other suffix (`dateext`: `log-20261203`, `log-2026-12-03-1764763200`): the later in
    /// byte order, the younger.
    Named(Vec<u8>),
}

/// The age of a rotated file: its modification time, and its name when the times are equal (a
/// file system's clock ticks coarsely: several rotations can share one mtime). Two numbered
/// files (`.N`) must agree on both: a writer that never reopened its log may have written an
/// older file last, and files copied by hand may be numbered the other way; where the signs
/// disagree, the file is not taken for younger (reading an older file again would repeat its
/// lines). `name` is `None` for a file no longer in the directory (only the time is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Age {
    /// Modification time.
    pub mtime: SystemTime,
    /// What the name says.
    pub name: Option<NameAge>,
}

impl Age {
    /// Whether `self` was rotated after `other`. Equal times and a name unknown on either side:
    /// not known to be younger, so not.
    fn younger_than(&self, other: &Age) -> bool {
        let numbered = matches!((&self.name, &other.name), (Some(NameAge::Numbered(_)), Some(NameAge::Numbered(_))));
        match self.mtime.cmp(&other.mtime) {
            std::cmp::Ordering::Equal => matches!((&self.name, &other.name), (Some(a), Some(b)) if a > b),
            std::cmp::Ordering::Greater => !numbered || self.name > other.name,
            std::cmp::Ordering::Less => false,
        }
    }
}

/// What the name of a file beside the log named `base` says of it: `None` if it is not a
/// rotated copy of that log that can be read. A rotated name is the log's name followed by
/// `.`, `-` or `_` and something holding a digit (`app.log.1`, `app.log-20261203`), and not a
/// compressed one: `app.log.bak`, `app.logger` and `app.log.2.gz` are not.
pub fn name_age(base: &[u8], name: &[u8]) -> Option<NameAge> {
    let suffix = name.strip_prefix(base)?;
    let (&sep, rest) = suffix.split_first()?;
    if !matches!(sep, b'.' | b'-' | b'_') || !rest.iter().any(u8::is_ascii_digit) {
        return None;
    }
    if COMPRESSED.iter().any(|c| name.ends_with(c.as_bytes())) {
        return None;
    }
    match std::str::from_utf8(rest).ok().filter(|_| sep == b'.').and_then(|r| r.parse::<u64>().ok()) {
        Some(n) if rest.iter().all(u8::is_ascii_digit) => Some(NameAge::Numbered(std::cmp::Reverse(n))),
        _ => Some(NameAge::Named(suffix.to_vec())),
    }
}

/// The files to read after `found` (the file that was being read, found rotated, or the copy
/// `copytruncate` made of it), oldest first, and those skipped past [`MAX_BACKLOG`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// To read from their start, in this order.
    pub read: Vec<Candidate>,
    /// Rotated in between but not read (the oldest, past the bound).
    pub skipped: Vec<Candidate>,
}

/// The rotated files of the log named `base` written after `found` and before `upper` (the
/// file read next, when it was rotated too), oldest first; never one of `exclude` (the files
/// being read, the one at the path) nor an empty one. Rule: a rotated name ([`name_age`]),
/// younger than `found` and older than `upper` by [`Age`] (mtime, then the name; numbers and
/// mtimes agreeing), in the order of their numbers when all are numbered, else of their ages. Past [`MAX_BACKLOG`], the oldest are skipped: the newest lines
/// matter most to a monitor.
pub fn backlog(base: &[u8], found: &Age, upper: Option<&Age>, candidates: &[Candidate], exclude: &[FileIdentity]) -> Backlog {
    let mut aged: Vec<(Age, &Candidate)> = Vec::new();
    for c in candidates {
        let Some(name) = c.path.file_name().and_then(|n| name_age(base, n.as_encoded_bytes())) else { continue };
        if c.size == 0 || exclude.contains(&c.id) || aged.iter().any(|(_, o)| o.id == c.id) {
            continue;
        }
        aged.push((Age { mtime: c.mtime, name: Some(name) }, c));
    }
    aged.retain(|(age, _)| age.younger_than(found) && upper.is_none_or(|u| u.younger_than(age)));
    if aged.iter().all(|(a, _)| matches!(a.name, Some(NameAge::Numbered(_)))) {
        aged.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    } else {
        aged.sort_by(|a, b| (a.0.mtime, &a.0.name).cmp(&(b.0.mtime, &b.0.name)));
    }
    let skip = aged.len().saturating_sub(MAX_BACKLOG);
    let mut all = aged.into_iter().map(|(_, c)| c.clone());
    Backlog { skipped: all.by_ref().take(skip).collect(), read: all.collect() }
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

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
    }

    fn cand(path: &str, ino: u64, size: u64, secs: u64) -> Candidate {
        Candidate { path: PathBuf::from(path), id: FileIdentity { dev: 1, ino }, size, mtime: t(secs) }
    }

    fn age_of(c: &Candidate) -> Age {
        let name = c.path.file_name().and_then(|n| name_age(b"app.log", n.as_encoded_bytes()));
        Age { mtime: c.mtime, name }
    }

    fn names(b: &[Candidate]) -> Vec<String> {
        b.iter().map(|c| c.path.display().to_string()).collect()
    }

    #[test]
    fn rotated_names() {
        use NameAge::*;
        use std::cmp::Reverse;
        let table: [(&str, Option<NameAge>); 12] = [
            ("app.log.1", Some(Numbered(Reverse(1)))),
            ("app.log.12", Some(Numbered(Reverse(12)))),
            ("app.log-20261203", Some(Named(b"-20261203".to_vec()))),
            ("app.log-2026-12-03-1764763200", Some(Named(b"-2026-12-03-1764763200".to_vec()))),
            ("app.log.1.tmp2", Some(Named(b".1.tmp2".to_vec()))),
            ("app.log_1", Some(Named(b"_1".to_vec()))),
            ("app.log", None),
            ("app.log.bak", None),
            ("app.logger1", None),
            ("app.log.2.gz", None),
            ("app.log-20261203.xz", None),
            ("other.log.1", None),
        ];
        for (name, want) in table {
            assert_eq!(name_age(b"app.log", name.as_bytes()), want, "{name}");
        }
    }

    /// (what is beside the log, the file found, the one read next if rotated too, the
    /// identities excluded, the files read in order)
    type Case<'a> = (&'a [Candidate], usize, Option<usize>, &'a [u64], &'a [&'a str]);

    /// Which files rotated after the one found are read, in which order.
    #[test]
    fn the_backlog_after_the_file_found() {
        let create = [
            cand("d/app.log.4", 4, 10, 100),
            cand("d/app.log.3", 3, 10, 200),
            cand("d/app.log.2", 2, 10, 300),
            cand("d/app.log.1", 1, 10, 400),
        ];
        // Equal mtimes (a coarse clock): the numbers say the order.
        let same_time = [cand("d/app.log.3", 3, 10, 100), cand("d/app.log.1", 1, 10, 100), cand("d/app.log.2", 2, 10, 100)];
        let dateext =
            [cand("d/app.log-20261203", 3, 10, 100), cand("d/app.log-20261201", 1, 10, 100), cand("d/app.log-20261202", 2, 10, 100)];
        let olddir = [cand("d/old/app.log.2", 2, 10, 200), cand("d/old/app.log.1", 1, 10, 300), cand("d/old/app.log.3", 3, 10, 100)];
        // copytruncate: copies, the log itself (inode 9) at the path; compressed and empty ones
        // and other names are not read.
        let copies = [
            cand("d/app.log", 9, 50, 500),
            cand("d/app.log.3.gz", 5, 10, 300),
            cand("d/app.log.2", 2, 10, 200),
            cand("d/app.log.1", 1, 10, 400),
            cand("d/app.log.bak", 6, 10, 450),
            cand("d/app.log.0", 7, 0, 450),
        ];
        // A writer that never reopened its log wrote to the older file last: .1 is not younger
        // than .2 (the mtimes disagree with the numbers), and the numbers order them.
        let late_writer = [cand("d/app.log.2", 2, 10, 500), cand("d/app.log.1", 1, 10, 400), cand("d/app.log.3", 3, 10, 100)];
        // Copies numbered by hand, the newer with the higher number: neither is taken for
        // younger than the other.
        let by_hand = [cand("d/app.log.1", 1, 10, 100), cand("d/app.log.2", 2, 10, 200)];
        let cases: [Case; 12] = [
            (&create, 0, None, &[], &["d/app.log.3", "d/app.log.2", "d/app.log.1"]),
            (&create, 2, None, &[], &["d/app.log.1"]),
            (&create, 3, None, &[], &[]),
            // The file read next was rotated too (it is .2): only what is between.
            (&create, 0, Some(2), &[2], &["d/app.log.3"]),
            (&same_time, 0, None, &[], &["d/app.log.2", "d/app.log.1"]),
            (&dateext, 1, None, &[], &["d/app.log-20261202", "d/app.log-20261203"]),
            (&olddir, 2, None, &[], &["d/old/app.log.2", "d/old/app.log.1"]),
            (&copies, 2, None, &[9], &["d/app.log.1"]),
            (&late_writer, 0, None, &[], &[]),
            (&late_writer, 2, None, &[], &["d/app.log.2", "d/app.log.1"]),
            (&by_hand, 0, None, &[], &[]),
            (&by_hand, 1, None, &[], &[]),
        ];
        for (cands, found, upper, exclude, want) in cases {
            let exclude: Vec<FileIdentity> = exclude.iter().map(|&ino| FileIdentity { dev: 1, ino }).collect();
            let got = backlog(b"app.log", &age_of(&cands[found]), upper.map(|u| age_of(&cands[u])).as_ref(), cands, &exclude);
            assert_eq!(names(&got.read), want, "found {:?}", cands[found].path);
            assert!(got.skipped.is_empty());
        }
    }

    #[test]
    fn a_file_found_only_by_its_open_descriptor_orders_by_time_alone() {
        let cands = [cand("d/app.log.1", 1, 10, 100), cand("d/app.log.2", 2, 10, 90)];
        let found = Age { mtime: t(100), name: None };
        assert!(backlog(b"app.log", &found, None, &cands, &[]).read.is_empty(), "an equal time says nothing");
        let found = Age { mtime: t(80), name: None };
        assert_eq!(names(&backlog(b"app.log", &found, None, &cands, &[]).read), ["d/app.log.2", "d/app.log.1"]);
    }

    #[test]
    fn past_the_bound_the_oldest_are_skipped() {
        let cands: Vec<Candidate> = (1..=20).map(|n| cand(&format!("d/app.log.{n}"), n, 10, 1000 - n)).collect();
        let found = age_of(&cands[19]);
        let got = backlog(b"app.log", &found, None, &cands, &[]);
        assert_eq!(got.read.len(), MAX_BACKLOG);
        assert_eq!(names(&got.skipped), ["d/app.log.19", "d/app.log.18", "d/app.log.17"]);
        assert_eq!(got.read.first().map(|c| c.id.ino), Some(16));
        assert_eq!(got.read.last().map(|c| c.id.ino), Some(1));
    }
}
