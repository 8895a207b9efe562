//! A model-based test of the tailer (as vector's file source is tested): random sequences of
//! appends, partial lines, rename rotations, `copytruncate`, truncation, deletion, re-creation,
//! agent restarts and crashes, on real files, checked against a reference model of which lines
//! must be delivered.
//!
//! Rotation is logrotate's: `.N` moves to `.N+1` (the oldest past [`KEEP`] deleted), then the log
//! becomes `.1` (renamed, or copied and truncated).
//!
//! The reference is an ideal follower that, at each read, reads the file it has open to its end,
//! then the files rotated after it, then the file the path names if that is another one. What it
//! must deliver: every line of a file it had open or found at the path at a read; of the copy
//! `copytruncate` left when the file it had read from was truncated since the last read (the
//! first truncation's copy: it is found by the bytes before the read offset, so at least one
//! line must have been read); and of every file still among the rotated ones that was rotated
//! after the one it was reading (or after that copy), however many rotations came between two
//! reads. What nobody can deliver, and the reference does not ask for: a file created and
//! rotated away between two reads when nothing was being read, files deleted (rotated past
//! [`KEEP`]) before they were read, lines truncated away without a copy before they were read,
//! the unread rest of a file deleted while the agent was stopped.
//!
//! Checked after every sequence: every delivered line is a line that was written, whole, with
//! its line number in its file; no line twice unless a crash came before; lines of one file in
//! the order written; every line the reference must deliver, delivered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::lines::LineSink;
use super::tail::{Position, Progress, Scratch, Tailer};
use super::watch::{Listener, Watches};
use crate::time::Instant;

#[derive(Debug, Clone)]
enum Op {
    /// `n` complete lines at the path (created if missing).
    Append(u8),
    /// The first bytes of the next line, without its newline; completed by the next write.
    Partial,
    /// The agent reads.
    Sync,
    /// Rename the log to `.1` (replacing it); `create`: a new empty log at once.
    Rotate { create: bool },
    /// logrotate's copytruncate: a fresh `.1` copy, then the log truncated to nothing.
    CopyTruncate,
    /// The log truncated to nothing, no copy.
    Truncate,
    /// The log deleted.
    Delete,
    /// The position as the agent saves it now.
    Save,
    /// A clean stop and start: the position at the stop is resumed, and read at once (the
    /// daemon reads every check in its first turn).
    Restart,
    /// `kill -9` and start: the last saved position is resumed, and read at once.
    Crash,
}

/// Rotated files kept (logrotate's `rotate 4`): `.1` to `.4`.
const KEEP: usize = 4;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..6).prop_map(Op::Append),
        2 => Just(Op::Partial),
        6 => Just(Op::Sync),
        2 => any::<bool>().prop_map(|create| Op::Rotate { create }),
        2 => Just(Op::CopyTruncate),
        1 => Just(Op::Truncate),
        1 => Just(Op::Delete),
        2 => Just(Op::Save),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// The text of line `seq`: unique, of varied length (some longer than the 64-byte fingerprint).
fn text(seq: u32) -> String {
    format!("L{seq:06}{}", "x".repeat((seq as usize * 37) % 90))
}

/// One file of the model: the sequence numbers of its complete lines since its last truncation.
#[derive(Debug, Clone, Default)]
struct MFile {
    lines: Vec<u32>,
    /// The line being written (its first bytes are in the file).
    partial: Option<u32>,
}

/// A file the follower has open: which, and how many of its lines were read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    file: usize,
    read: usize,
    /// The file was truncated and the copy read (and the files rotated after it): the last of
    /// them. While nothing is read from the file, the copies made after it are found from it.
    after: Option<usize>,
    /// Found again at a start: the tailer saves the end of the last file read before the one at
    /// the path while nothing is read from that one (see `after`).
    resumed: bool,
}

/// The reference: the files as the writer made them, and the ideal follower.
#[derive(Debug, Default)]
struct Model {
    files: Vec<MFile>,
    at_path: Option<usize>,
    /// The rotated files, `.1` first (the newest).
    rotated: Vec<usize>,
    reading: Option<Reading>,
    /// Set when the file being read was truncated since the last read: the copy made then
    /// (`None`: no copy, or more than one truncation).
    truncated: Option<Option<usize>>,
    /// The follower as saved: where it read, and a truncation it had not seen yet.
    saved: (Option<Reading>, Option<Option<usize>>),
    next_seq: u32,
    /// Every line written: (file, index in it since its last truncation).
    written: HashMap<u32, (usize, usize)>,
    must: BTreeSet<u32>,
    crashed: bool,
    /// A file was truncated without a copy to read its unread rest from: an unterminated line
    /// read before may come out cut (the tailer hands on what it had rather than nothing).
    lossy_truncation: bool,
}

impl Model {
    fn new_file(&mut self) -> usize {
        self.files.push(MFile::default());
        self.files.len() - 1
    }

    fn append(&mut self, n: u8) -> Vec<u8> {
        let f = match self.at_path {
            Some(f) => f,
            None => {
                let f = self.new_file();
                self.at_path = Some(f);
                f
            }
        };
        let mut bytes = Vec::new();
        if let Some(seq) = self.files[f].partial.take() {
            let t = text(seq);
            bytes.extend_from_slice(&t.as_bytes()[t.len() / 2..]);
            bytes.push(b'\n');
            self.complete(f, seq);
        }
        for _ in 0..n {
            let seq = self.next_seq;
            self.next_seq += 1;
            bytes.extend_from_slice(text(seq).as_bytes());
            bytes.push(b'\n');
            self.complete(f, seq);
        }
        bytes
    }

    fn complete(&mut self, f: usize, seq: u32) {
        self.written.insert(seq, (f, self.files[f].lines.len()));
        self.files[f].lines.push(seq);
    }

    /// Where `f` is among the rotated files (0: `.1`).
    fn rotated_at(&self, f: usize) -> Option<usize> {
        self.rotated.iter().position(|&r| r == f)
    }

    /// Every line of the rotated files newer than `.{from + 1}` and older than `.{to + 1}`.
    fn must_between(&mut self, to: Option<usize>, from: usize) {
        let start = to.map_or(0, |t| t + 1);
        for i in (start..from).rev() {
            let f = self.rotated[i];
            self.must.extend(self.files[f].lines.iter().copied());
        }
    }

    /// The ideal follower reads.
    fn sync(&mut self) {
        if let Some(mut r) = self.reading {
            if let Some(copy) = self.truncated.take() {
                let to = self.rotated_at(r.file);
                let start = to.map_or(0, |t| t + 1);
                let newest_read = |m: &Model, at: usize| m.rotated[start..=at].iter().copied().find(|&f| !m.files[f].lines.is_empty());
                match (r.read, r.after.and_then(|a| self.rotated_at(a))) {
                    // Nothing read since the last copy (its offset 0 shows no truncation): every
                    // file rotated after that copy is looked for from it.
                    (0, Some(at)) => {
                        self.must_between(to, at);
                        match self.rotated[start..at].iter().copied().find(|&f| !self.files[f].lines.is_empty()) {
                            Some(f) => r.after = Some(f),
                            // Nothing to read: a half line read is handed on cut.
                            None => self.lossy_truncation = true,
                        }
                    }
                    // Something read: the copy is found by the bytes before the offset.
                    (0, None) => self.lossy_truncation = true,
                    (read, _) => match copy.and_then(|c| self.rotated_at(c).map(|at| (c, at))) {
                        Some((c, at)) => {
                            self.must.extend(self.files[c].lines[read..].iter().copied());
                            self.must_between(to, at);
                            // The last read: the newest of them not empty (the tailer skips
                            // empty ones), or the copy (found by content: read whatever it holds).
                            r.after = newest_read(self, at).or(Some(c));
                        }
                        None => {
                            self.lossy_truncation = true;
                            r.after = None;
                        }
                    },
                }
                r.read = 0;
            }
            let f = &self.files[r.file];
            self.must.extend(f.lines[r.read..].iter().copied());
            r.read = f.lines.len();
            // Files rotated after it are looked for when the path names another file (while
            // it names nothing, a file created and rotated away is not seen).
            if let Some(at) = self.rotated_at(r.file).filter(|_| self.at_path.is_some()) {
                self.must_between(None, at);
            }
            self.reading = Some(r);
        }
        match (self.at_path, self.reading) {
            (Some(p), Some(r)) if p == r.file => {}
            (Some(p), _) => {
                // Moving on from a file found at a start: the last one read before this file.
                let after = self.reading.filter(|r| r.resumed).and_then(|r| {
                    let at = self.rotated_at(r.file)?;
                    Some(self.rotated[..at].iter().copied().find(|&f| !self.files[f].lines.is_empty()).unwrap_or(r.file))
                });
                self.must.extend(self.files[p].lines.iter().copied());
                self.reading = Some(Reading { file: p, read: self.files[p].lines.len(), after, resumed: false });
            }
            (None, _) => {}
        }
    }

    /// The follower starts again at `from`: the file must still be in the directory.
    /// Nothing read from the file since a copy of it (or the file before it) was read: the
    /// position saved is that copy's end.
    fn resume(&mut self, (from, truncated): (Option<Reading>, Option<Option<usize>>)) {
        let (from, truncated) = match from {
            Some(Reading { read: 0, after: Some(a), .. }) => {
                (self.rotated_at(a).map(|_| Reading { file: a, read: self.files[a].lines.len(), after: None, resumed: true }), None)
            }
            // Found rotated away (not at the path): read as the tailer reads a copy's rest.
            from => (from.map(|r| Reading { resumed: self.at_path != Some(r.file), ..r }), truncated),
        };
        self.reading = from.filter(|r| self.at_path == Some(r.file) || self.rotated_at(r.file).is_some());
        self.truncated = if self.reading.is_some() { truncated } else { None };
    }

    /// The file at the path truncated: the same inode, but its lines start again (a new
    /// generation in the model, numbered from 1).
    fn truncate(&mut self, copy: Option<usize>) {
        let Some(p) = self.at_path else { return };
        let g = self.new_file();
        self.at_path = Some(g);
        if let Some(r) = self.reading.as_mut().filter(|r| r.file == p) {
            r.file = g;
            // Truncated again: the first copy holds the rest of what was read, the later ones
            // are newer rotated files.
            if self.truncated.is_none() {
                self.truncated = Some(copy);
            }
        }
        // The position saved follows the same inode (a crash resumes it and finds the copy).
        if let (Some(r), truncated) = &mut self.saved {
            if r.file == p {
                r.file = g;
                if truncated.is_none() {
                    *truncated = Some(copy);
                }
            }
        }
    }
}

/// Collects what the tailer delivers: (line number, text).
#[derive(Default)]
struct Got(Vec<(u64, String)>);

impl LineSink for Got {
    fn lines(&mut self, buf: &[u8], first_line: u64, _count: u64) {
        for (i, l) in buf.split_inclusive(|&b| b == b'\n').enumerate() {
            self.0.push((first_line + i as u64, String::from_utf8_lossy(&l[..l.len() - 1]).into_owned()));
        }
    }
    fn line(&mut self, line: &[u8], number: u64) {
        self.0.push((number, String::from_utf8_lossy(line).into_owned()));
    }
}

struct Harness {
    _tmp: crate::testutil::TempDir,
    path: PathBuf,
    dir: PathBuf,
    watches: Watches,
    scratch: Scratch,
    tailer: Tailer,
    saved: Option<Position>,
    now: Instant,
    got: Got,
    model: Model,
}

impl Harness {
    fn new() -> Harness {
        let tmp = crate::testutil::TempDir::new("tail-model");
        let path = tmp.path().join("app.log");
        Harness {
            dir: tmp.path().to_path_buf(),
            tailer: Tailer::new(path.clone(), Listener::Check(1), None),
            path,
            _tmp: tmp,
            watches: Watches::new().expect("inotify"),
            scratch: Scratch::new(1024),
            saved: None,
            now: Instant::from_millis(1_000),
            got: Got::default(),
            model: Model::default(),
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(path).expect("append");
        f.write_all(bytes).expect("write");
    }

    fn apply(&mut self, op: &Op) {
        self.now = self.now.plus_ms(300);
        let m = &mut self.model;
        match op {
            Op::Append(n) => {
                let bytes = m.append(*n);
                Self::write(&self.path, &bytes);
            }
            Op::Partial => {
                let bytes = m.append(0);
                Self::write(&self.path, &bytes);
                if let Some(p) = m.at_path {
                    let seq = m.next_seq;
                    m.next_seq += 1;
                    m.files[p].partial = Some(seq);
                    let t = text(seq);
                    Self::write(&self.path, &t.as_bytes()[..t.len() / 2]);
                }
            }
            Op::Sync => self.sync(),
            Op::Rotate { create } => self.rotate(*create),
            Op::CopyTruncate | Op::Truncate => {
                let bytes = m.append(0);
                Self::write(&self.path, &bytes);
                if m.at_path.is_none() {
                    return;
                }
                let copy = matches!(op, Op::CopyTruncate).then(|| {
                    self.shift();
                    fs::copy(&self.path, self.numbered(1)).expect("copy");
                    let m = &mut self.model;
                    let c = m.new_file();
                    let p = m.at_path.unwrap_or(c);
                    m.files[c] = m.files[p].clone();
                    m.rotated.insert(0, c);
                    c
                });
                let m = &mut self.model;
                fs::OpenOptions::new().write(true).open(&self.path).expect("open").set_len(0).expect("truncate");
                m.truncate(copy);
            }
            Op::Delete => {
                let bytes = m.append(0);
                Self::write(&self.path, &bytes);
                if m.at_path.take().is_some() {
                    fs::remove_file(&self.path).expect("delete");
                }
            }
            Op::Save => {
                self.saved = self.tailer.position();
                m.saved = (m.reading, m.truncated);
            }
            Op::Restart => {
                let pos = self.tailer.stop(&mut self.watches);
                self.tailer = Tailer::new(self.path.clone(), Listener::Check(1), pos);
                let from = (m.reading, m.truncated);
                m.resume(from);
                self.sync();
            }
            Op::Crash => {
                self.tailer.stop(&mut self.watches);
                self.tailer = Tailer::new(self.path.clone(), Listener::Check(1), self.saved);
                m.crashed = true;
                let from = m.saved;
                m.resume(from);
                self.sync();
            }
        }
    }

    /// logrotate's `create` (a new empty log at once) or `nocreate`.
    fn rotate(&mut self, create: bool) {
        // A writer finishes its line before its log is rotated.
        let bytes = self.model.append(0);
        Self::write(&self.path, &bytes);
        if let Some(p) = self.model.at_path.take() {
            self.shift();
            fs::rename(&self.path, self.numbered(1)).expect("rename");
            self.model.rotated.insert(0, p);
        }
        if create {
            Self::write(&self.path, b"");
            self.model.at_path = Some(self.model.new_file());
        }
    }

    fn numbered(&self, n: usize) -> PathBuf {
        self.dir.join(format!("app.log.{n}"))
    }

    /// logrotate's numbering: `.N` to `.N+1`, the oldest past [`KEEP`] deleted.
    fn shift(&mut self) {
        for n in (1..=KEEP).rev() {
            let _ = fs::rename(self.numbered(n), self.numbered(n + 1));
        }
        let _ = fs::remove_file(self.numbered(KEEP + 1));
        self.model.rotated.truncate(KEEP - 1);
    }

    fn sync(&mut self) {
        let mut budget = usize::MAX;
        let mut n = 0;
        while self.tailer.sync(self.now, &mut self.watches, &mut self.scratch, &mut budget, &mut self.got) == Progress::More {
            n += 1;
            assert!(n < 100, "the tailer keeps asking for more");
        }
        self.model.sync();
    }

    /// Checks what was delivered against what was written and what the reference must deliver.
    fn check(&self) -> Result<(), TestCaseError> {
        self.check_lines().map_err(|e| TestCaseError::fail(format!("{e}\ndelivered: {:?}\nmodel: {:?}", self.got.0, self.model)))
    }

    fn check_lines(&self) -> Result<(), TestCaseError> {
        let m = &self.model;
        let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
        let mut last_in_file: HashMap<usize, usize> = HashMap::new();
        for (number, line) in &self.got.0 {
            if m.lossy_truncation && m.written.keys().any(|&s| text(s).len() > line.len() && text(s).starts_with(line.as_str())) {
                continue; // the start of a line truncated away, handed on as it was read
            }
            let seq: u32 =
                line.get(1..7).and_then(|d| d.parse().ok()).ok_or_else(|| TestCaseError::fail(format!("garbled line {line:?}")))?;
            prop_assert_eq!(line, &text(seq), "line {} is not whole", seq);
            let &(file, index) = m.written.get(&seq).ok_or_else(|| TestCaseError::fail(format!("line {seq} was never completed")))?;
            prop_assert_eq!(*number, index as u64 + 1, "line number of {}", seq);
            let count = seen.entry(seq).or_default();
            *count += 1;
            prop_assert!(*count == 1 || m.crashed, "line {} delivered twice without a crash", seq);
            if *count == 1 {
                if let Some(prev) = last_in_file.insert(file, index) {
                    prop_assert!(m.crashed || prev < index, "line {} of file {} came out of order", seq, file);
                }
            }
        }
        let missing: Vec<u32> = m.must.iter().filter(|s| !seen.contains_key(s)).copied().collect();
        prop_assert!(missing.is_empty(), "lines never delivered: {:?}", missing);
        Ok(())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for op in ops {
        h.apply(op);
    }
    h.apply(&Op::Sync);
    h.apply(&Op::Sync);
    h.check()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_tailer_delivers_what_the_reference_must(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}

/// Sequences proptest found, kept as regressions.
#[test]
fn regressions() {
    use Op::*;
    let cases: &[&[Op]] = &[
        &[Append(2), Sync, CopyTruncate, Append(1), Sync],
        &[Append(1), Sync, Rotate { create: true }, Append(2), Restart, Append(1)],
        &[Append(1), Sync, Save, Append(2), Sync, Crash, Append(1)],
        &[Append(1), Sync, Delete, Append(1), Sync, Rotate { create: false }, Append(1)],
        &[Partial, Sync, Append(1), Sync, Truncate, Append(2)],
        // A copytruncate when only half a line had been read: the copy is found by that half.
        &[Partial, Sync, CopyTruncate, Sync],
        // Truncated and refilled under a half-read line: the old half was glued to new bytes.
        &[Append(1), Rotate { create: false }, Partial, Restart, CopyTruncate, Append(1)],
        // Rotated while stopped, after a truncation and refill: was resumed mid-line.
        &[Append(1), Restart, CopyTruncate, Append(1), Save, Rotate { create: false }, Restart],
        // Rotated while stopped and nothing new at the path: its rest waited for a new file.
        &[Partial, Sync, Save, Rotate { create: false }, Restart, Sync],
        &[Append(1), Partial, Sync, CopyTruncate, Rotate { create: false }],
        &[Append(1), Restart, CopyTruncate, Rotate { create: false }, Save, Sync, Crash],
        // Rotated twice within one stall: the middle file was skipped.
        &[Append(1), Sync, Rotate { create: true }, Append(1), Rotate { create: true }, Append(1)],
        &[Append(1), Sync, Save, CopyTruncate, Append(1), CopyTruncate, Crash],
        // The middle copy was read twice: from the first copy, then from the deleted file.
        &[Append(1), Sync, CopyTruncate, Delete, Append(1), CopyTruncate],
        // Saved at the end of the copy; the truncated file, then a new one, rotated away.
        &[Append(1), Sync, CopyTruncate, Sync, Rotate { create: false }, Save, Append(1), Rotate { create: true }, Restart],
        // Resumed while nothing was at the path; a file created and rotated before the next.
        &[Append(1), Sync, Save, Rotate { create: false }, Restart, Append(1), Rotate { create: false }, Append(1)],
    ];
    for ops in cases {
        run(ops).unwrap_or_else(|e| panic!("{ops:?}: {e}"));
    }
}
