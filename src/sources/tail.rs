//! Following one log file by path, across rotation, truncation, deletion and restarts.
//!
//! Position is (device, inode, byte offset, line number). The tailer reads with `pread` from its
//! own offset until end of file, hands complete lines to a [`LineSink`], and keeps a partial last
//! line until its newline arrives. When the path names another inode (rename + create rotation,
//! delete + recreate), the old file is read to its end first and kept open for a grace period as
//! "retired", so lines a writer still appends to it are not lost. When the file shrinks below
//! the offset (truncation, `copytruncate`), the rotated copy is found by content and its tail is
//! read before the file is read again from the start.
//!
//! Lines longer than the bound are cut: the first `max_line` bytes are handed on as one line and
//! the rest up to the newline is skipped, counted. A read never exceeds the caller's budget, so
//! one busy file cannot starve the others.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::lines::{LineAssembler, Pumped, ReadCounters};
pub use super::lines::{LineSink, Scratch};
use super::watch::{Listener, WatchError, WatchHandle, Watches};
use crate::time::Instant;

/// How long a rotated-away file is still read after the switch to the new one.
pub const RETIRE_GRACE_MS: u64 = 10_000;
/// How often a file is re-read when inotify could not watch it (watch limit).
pub const FALLBACK_POLL_MS: u64 = 1_000;
/// The identity of a file, stable across renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileIdentity {
    fn of(m: &fs::Metadata) -> Self {
        FileIdentity { dev: m.dev(), ino: m.ino() }
    }
}

/// Where reading stopped: the next line to read starts at `offset` and is number `line`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The file.
    pub id: FileIdentity,
    /// Byte offset of the first byte not yet handed on.
    pub offset: u64,
    /// 1-based number of the line starting at `offset`.
    pub line: u64,
    /// The last bytes read before `offset`, summed (none before the first line).
    pub tail: Option<TailSum>,
}

/// A checksum of the bytes just before a read offset. A file truncated and written again while
/// the agent was stopped (`copytruncate` of a busy log) keeps its inode and may be longer than
/// the saved offset; only its bytes before that offset say it is not the file that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailSum {
    /// How many bytes (at most [`super::lines::FINGERPRINT`]).
    pub len: u8,
    /// Their CRC-32C.
    pub crc: u32,
}

impl TailSum {
    /// The sum of `bytes`, the last ones read (at most [`super::lines::FINGERPRINT`] of them are
    /// kept); `None` for none.
    pub fn of(bytes: &[u8]) -> Option<TailSum> {
        let bytes = &bytes[bytes.len().saturating_sub(super::lines::FINGERPRINT)..];
        let len = u8::try_from(bytes.len()).ok().filter(|l| *l > 0)?;
        Some(TailSum { len, crc: crate::crc32c::crc32c(&[bytes]) })
    }

    /// The bytes of `file` just before `offset`, if their sum is this one.
    fn found_in(&self, file: &File, offset: u64) -> Option<Vec<u8>> {
        let start = offset.checked_sub(u64::from(self.len))?;
        let mut buf = vec![0; usize::from(self.len)];
        file.read_exact_at(&mut buf, start).ok()?;
        (TailSum::of(&buf) == Some(*self)).then_some(buf)
    }
}

/// Counters of one tailer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailCounters {
    /// Bytes read and lines cut.
    pub read: ReadCounters,
    /// Switches to a new file at the path.
    pub rotations: u64,
    /// Times the file shrank below the read offset.
    pub truncations: u64,
    /// Truncations where the rotated copy was found and its tail read.
    pub copies_recovered: u64,
    /// Read or open errors.
    pub errors: u64,
}

#[derive(Debug)]
struct OpenLog {
    file: File,
    id: FileIdentity,
    /// Lines of this file; its offset is the file offset.
    asm: LineAssembler,
    /// The last pump reached end of file.
    at_eof: bool,
}

/// Whether the caller's byte budget ran out before end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Everything available was read.
    Done,
    /// There is more to read: call again next turn.
    More,
}

impl OpenLog {
    fn new(file: File, id: FileIdentity, offset: u64, line: u64) -> Self {
        OpenLog { file, id, asm: LineAssembler::new(offset, line), at_eof: false }
    }

    fn position(&self) -> Position {
        Position { id: self.id, offset: self.asm.offset(), line: self.asm.line(), tail: TailSum::of(self.asm.last()) }
    }

    /// Whether the bytes before the read offset are no longer the ones read: the file was
    /// truncated and written past the offset again between two reads (a short file is left to
    /// the size check; a failed read says nothing).
    fn rewritten(&self) -> bool {
        let last = self.asm.last();
        let mut buf = [0u8; super::lines::FINGERPRINT];
        let Some(buf) = buf.get_mut(..last.len()).filter(|b| !b.is_empty()) else { return false };
        let start = self.asm.offset().saturating_sub(last.len() as u64);
        self.file.read_exact_at(buf, start).is_ok() && *buf != *last
    }

    /// Reads until end of file or until `budget` is spent. `Ok(true)` at end of file.
    fn pump(
        &mut self,
        scratch: &mut Scratch,
        budget: &mut usize,
        counters: &mut TailCounters,
        sink: &mut dyn LineSink,
    ) -> io::Result<bool> {
        let file = &self.file;
        let mut read = |buf: &mut [u8], at: u64| file.read_at(buf, at);
        let result = self.asm.pump(scratch, budget, &mut counters.read, sink, &mut read);
        self.at_eof = matches!(result, Ok(Pumped::Eof));
        result.map(|p| p == Pumped::Eof)
    }
}

#[derive(Debug)]
struct Retired {
    log: OpenLog,
    watch: Option<WatchHandle>,
    close_at: Instant,
}

/// Follows the file at one path.
#[derive(Debug)]
pub struct Tailer {
    path: PathBuf,
    listener: Listener,
    current: Option<OpenLog>,
    current_watch: Option<WatchHandle>,
    retired: Option<Retired>,
    /// The watched directory (the parent, or the nearest existing ancestor) and its handle.
    dir_watch: Option<(PathBuf, WatchHandle)>,
    /// A saved position to continue from when the file is first opened.
    resume: Option<Position>,
    /// inotify could not watch the file: re-read it on a timer.
    fallback_poll: bool,
    /// When [`sync`](Self::sync) last ran (the fallback timer counts from there).
    synced_at: Instant,
    waiting_logged: bool,
    counters: TailCounters,
}

impl Tailer {
    /// A tailer for `path` that wakes `listener`; `resume` continues from a saved position.
    pub fn new(path: PathBuf, listener: Listener, resume: Option<Position>) -> Self {
        Tailer {
            path,
            listener,
            current: None,
            current_watch: None,
            retired: None,
            dir_watch: None,
            resume,
            fallback_poll: false,
            synced_at: Instant::default(),
            waiting_logged: false,
            counters: TailCounters::default(),
        }
    }

    /// The followed path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters so far.
    pub fn counters(&self) -> TailCounters {
        self.counters
    }

    /// The position to save: the retired file's while it has unread data, else the current
    /// file's, else the one we were asked to resume from.
    pub fn position(&self) -> Option<Position> {
        if let Some(r) = &self.retired {
            if !r.log.at_eof {
                return Some(r.log.position());
            }
        }
        self.current.as_ref().map(OpenLog::position).or(self.resume)
    }

    /// Where the file read now stands (for `status`); `None` while it does not exist.
    pub fn reading(&self) -> Option<Position> {
        self.current.as_ref().map(OpenLog::position)
    }

    /// When [`sync`](Self::sync) must run again without an event.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retire = self.retired.as_ref().map(|r| r.close_at);
        let poll = self.fallback_poll.then(|| self.synced_at.plus_ms(FALLBACK_POLL_MS));
        match (retire, poll) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Releases every watch and file; returns the position to save.
    pub fn stop(&mut self, watches: &mut Watches) -> Option<Position> {
        let pos = self.position();
        for h in
            [self.current_watch.take(), self.retired.take().and_then(|r| r.watch), self.dir_watch.take().map(|d| d.1)].into_iter().flatten()
        {
            watches.unwatch(h);
        }
        self.current = None;
        pos
    }

    /// Reads what is new, following rotation and truncation; reads at most `budget` bytes.
    pub fn sync(
        &mut self,
        now: Instant,
        watches: &mut Watches,
        scratch: &mut Scratch,
        budget: &mut usize,
        sink: &mut dyn LineSink,
    ) -> Progress {
        self.synced_at = now;
        self.ensure_dir_watch(watches);
        // Each pass handles at most one rotation or truncation; a path that keeps changing is
        // looked at again next turn.
        for _ in 0..4 {
            if let Some(r) = self.retired.as_mut() {
                match r.log.pump(scratch, budget, &mut self.counters, sink) {
                    Ok(false) => return Progress::More,
                    Ok(true) => {
                        if now >= r.close_at {
                            self.close_retired(watches, sink);
                        }
                    }
                    Err(e) => {
                        self.counters.errors += 1;
                        crate::warn!("{}: reading the rotated file failed: {e}", self.path.display());
                        self.close_retired(watches, sink);
                    }
                }
            }
            if self.current.is_none() {
                if !self.open_current(now, watches) {
                    return Progress::Done;
                }
                if self.retired.as_ref().is_some_and(|r| !r.log.at_eof) {
                    // Opening found the file we read before a restart: its rest comes first.
                    continue;
                }
            }
            let Some(cur) = self.current.as_mut() else { return Progress::Done };
            if cur.rewritten() {
                // The copy's rest (if found) comes first, as for a truncation seen by size.
                self.on_truncated(now, watches, sink);
                continue;
            }
            match cur.pump(scratch, budget, &mut self.counters, sink) {
                Ok(false) => return Progress::More,
                Ok(true) => {}
                Err(e) => {
                    self.counters.errors += 1;
                    crate::warn!("{}: read failed: {e}; reopening", self.path.display());
                    self.drop_current(watches);
                    return Progress::Done;
                }
            }
            let len = cur.file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
            if len < cur.asm.offset() + cur.asm.pending() as u64 {
                self.on_truncated(now, watches, sink);
                continue;
            }
            match fs::metadata(&self.path) {
                Ok(m) if FileIdentity::of(&m) != cur.id => {
                    self.counters.rotations += 1;
                    crate::info!("{}: rotated (new inode {}); reading the old file to its end first", self.path.display(), m.ino());
                    self.retire_current(now, watches, sink);
                    continue;
                }
                // Deleted or renamed away and not re-created yet: the open file may still grow.
                _ => return Progress::Done,
            }
        }
        Progress::More
    }

    fn ensure_dir_watch(&mut self, watches: &mut Watches) {
        let Some(parent) = self.path.parent() else { return };
        if let Some((dir, h)) = &self.dir_watch {
            if dir == parent && watches.is_live(h) {
                return;
            }
        }
        // Watch the deepest existing ancestor, for the name of the next component down.
        let mut target: &Path = &self.path;
        while let Some(dir) = target.parent() {
            let name = target.file_name().map(|n| n.to_os_string());
            match watches.watch_dir(dir, name, self.listener) {
                Ok(h) => {
                    if let Some((_, old)) = self.dir_watch.replace((dir.to_path_buf(), h)) {
                        watches.unwatch(old);
                    }
                    if dir != parent {
                        crate::info!(
                            "{}: directory {} does not exist yet; watching {}",
                            self.path.display(),
                            parent.display(),
                            dir.display()
                        );
                    }
                    return;
                }
                Err(WatchError::NotFound) => target = dir,
                Err(e) => {
                    crate::warn!("{}: cannot watch {}: {e}; re-reading every {} ms", self.path.display(), dir.display(), FALLBACK_POLL_MS);
                    self.fallback_poll = true;
                    return;
                }
            }
        }
    }

    /// Opens the file at the path; `false` if it is not there (yet).
    fn open_current(&mut self, now: Instant, watches: &mut Watches) -> bool {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.counters.errors += 1;
                    crate::warn!("{}: cannot open: {e}", self.path.display());
                } else if !self.waiting_logged {
                    crate::info!("{}: does not exist yet; waiting for it", self.path.display());
                }
                self.waiting_logged = true;
                return false;
            }
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => {
                crate::warn!("{}: cannot stat: {e}", self.path.display());
                return false;
            }
        };
        if meta.is_dir() {
            if !self.waiting_logged {
                crate::warn!("{}: is a directory, not a log file", self.path.display());
            }
            self.waiting_logged = true;
            return false;
        }
        self.waiting_logged = false;
        let id = FileIdentity::of(&meta);
        match watches.watch_file(&self.path, self.listener) {
            Ok(h) => {
                if let Some(old) = self.current_watch.replace(h) {
                    watches.unwatch(old);
                }
            }
            Err(e) => {
                crate::warn!("{}: cannot watch: {e}; re-reading every {} ms", self.path.display(), FALLBACK_POLL_MS);
                self.fallback_poll = true;
            }
        }
        let mut log = OpenLog::new(file, id, 0, 1);
        if let Some(pos) = self.resume.take() {
            if pos.id != id {
                self.resume_rotated(now, pos, watches);
            } else if meta.len() < pos.offset {
                self.resume_truncated(now, pos, "shorter than when last read");
            } else {
                match pos.tail.map(|t| t.found_in(&log.file, pos.offset)) {
                    Some(None) => self.resume_truncated(now, pos, "rewritten (the bytes before the saved offset changed)"),
                    found => {
                        log.asm = LineAssembler::new(pos.offset, pos.line);
                        if let Some(Some(bytes)) = found {
                            log.asm.seed_last(&bytes);
                        }
                    }
                }
            }
        }
        self.current = Some(log);
        true
    }

    /// The file we were reading before a restart was truncated meanwhile (same inode, not the
    /// bytes we read): the rest of what we had not read is in the copy `copytruncate` left, if
    /// it is found by content; then the file is read from the start.
    fn resume_truncated(&mut self, now: Instant, pos: Position, what: &str) {
        self.counters.truncations += 1;
        match pos.tail.and_then(|t| find_copy(&self.path, pos.id, pos.offset, t)) {
            Some((copy_path, file)) => {
                self.counters.copies_recovered += 1;
                crate::info!(
                    "{}: {what} while stopped; reading the rest of the copy {} from byte {}, then the file from the start",
                    self.path.display(),
                    copy_path.display(),
                    pos.offset
                );
                let id = file.metadata().map(|m| FileIdentity::of(&m)).unwrap_or(pos.id);
                let log = OpenLog::new(file, id, pos.offset, pos.line);
                self.retired = Some(Retired { log, watch: None, close_at: now });
            }
            None => crate::info!("{}: {what} while stopped; reading from the start", self.path.display()),
        }
    }

    /// The file we were reading before a restart was rotated away meanwhile: find it by inode
    /// in the same directory and read its rest first.
    fn resume_rotated(&mut self, now: Instant, pos: Position, watches: &mut Watches) {
        let found = self.path.parent().and_then(|dir| {
            fs::read_dir(dir).ok()?.flatten().find_map(|e| {
                let p = e.path();
                let m = fs::metadata(&p).ok()?;
                (m.is_file() && FileIdentity::of(&m) == pos.id).then_some(p)
            })
        });
        match found.and_then(|p| File::open(&p).ok().map(|f| (p, f))) {
            Some((p, file)) => {
                crate::info!("{}: rotated while stopped; reading the rest of {} first", self.path.display(), p.display());
                self.counters.rotations += 1;
                let watch = watches.watch_file(&p, self.listener).ok();
                let log = OpenLog::new(file, pos.id, pos.offset, pos.line);
                self.retired = Some(Retired { log, watch, close_at: now.plus_ms(RETIRE_GRACE_MS) });
            }
            None => crate::warn!(
                "{}: replaced while stopped and the old file (inode {}) is gone; reading the new file from the start",
                self.path.display(),
                pos.id.ino
            ),
        }
    }

    fn retire_current(&mut self, now: Instant, watches: &mut Watches, sink: &mut dyn LineSink) {
        self.close_retired(watches, sink);
        if let Some(log) = self.current.take() {
            self.retired = Some(Retired { log, watch: self.current_watch.take(), close_at: now.plus_ms(RETIRE_GRACE_MS) });
        }
    }

    fn close_retired(&mut self, watches: &mut Watches, sink: &mut dyn LineSink) {
        if let Some(mut r) = self.retired.take() {
            r.log.asm.finish(sink);
            if let Some(h) = r.watch {
                watches.unwatch(h);
            }
        }
    }

    fn drop_current(&mut self, watches: &mut Watches) {
        self.current = None;
        if let Some(h) = self.current_watch.take() {
            watches.unwatch(h);
        }
    }

    /// The file shrank below what we read: `copytruncate`, or a writer that truncates. Lines
    /// written after our last read and before the truncation are only in the copy, if any.
    fn on_truncated(&mut self, now: Instant, watches: &mut Watches, sink: &mut dyn LineSink) {
        self.counters.truncations += 1;
        let Some(cur) = self.current.as_mut() else { return };
        let copy = TailSum::of(cur.asm.last()).and_then(|t| find_copy(&self.path, cur.id, cur.asm.offset(), t));
        let (old_end, old_line, old_id) = (cur.asm.offset(), cur.asm.line(), cur.id);
        let partial = cur.asm.restart_at(0, 1);
        match copy {
            Some((copy_path, file)) => {
                self.counters.copies_recovered += 1;
                crate::info!(
                    "{}: truncated (copytruncate); reading the rest of the copy {} from byte {old_end}, then the file from the start",
                    self.path.display(),
                    copy_path.display()
                );
                self.close_retired(watches, sink);
                let id = file.metadata().map(|m| FileIdentity::of(&m)).unwrap_or(old_id);
                let log = OpenLog::new(file, id, old_end, old_line);
                // The copy is complete once the original is truncated: read it once, close it.
                self.retired = Some(Retired { log, watch: None, close_at: now });
            }
            None => {
                crate::info!("{}: truncated; reading from the start", self.path.display());
                if !partial.is_empty() {
                    sink.line(&partial, old_line);
                }
            }
        }
    }
}

/// Finds the copy `copytruncate` left beside `path` (the file `id`): a file whose name extends
/// the log's name, at least `offset` long, whose bytes before `offset` are the ones we read last.
fn find_copy(path: &Path, id: FileIdentity, offset: u64, tail: TailSum) -> Option<(PathBuf, File)> {
    let dir = path.parent()?;
    let base = path.file_name()?.to_str()?;
    let mut best: Option<(std::time::SystemTime, PathBuf, File)> = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == base || !name.starts_with(base) {
            continue;
        }
        if [".gz", ".xz", ".bz2", ".zst", ".lz4", ".Z"].iter().any(|s| name.ends_with(s)) {
            continue;
        }
        let p = entry.path();
        let Ok(file) = File::open(&p) else { continue };
        let Ok(m) = file.metadata() else { continue };
        if !m.is_file() || FileIdentity::of(&m) == id || m.len() < offset || tail.found_in(&file, offset).is_none() {
            continue;
        }
        let mtime = m.modified().unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|b| mtime > b.0) {
            best = Some((mtime, p, file));
        }
    }
    best.map(|(_, p, f)| (p, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Records what it is given, as `(line number, text)`.
    #[derive(Default)]
    struct Record(Vec<(u64, String)>);

    impl LineSink for Record {
        fn lines(&mut self, buf: &[u8], first_line: u64) -> u64 {
            let mut n = 0;
            for l in buf.split_inclusive(|&b| b == b'\n') {
                self.0.push((first_line + n, String::from_utf8_lossy(&l[..l.len() - 1]).into_owned()));
                n += 1;
            }
            n
        }
        fn line(&mut self, line: &[u8], number: u64) {
            self.0.push((number, String::from_utf8_lossy(line).into_owned()));
        }
    }

    struct Fixture {
        _tmp: crate::testutil::TempDir,
        path: PathBuf,
        watches: Watches,
        scratch: Scratch,
        tailer: Tailer,
        got: Record,
        now: Instant,
    }

    impl Fixture {
        fn new(max_line: usize) -> Self {
            let tmp = crate::testutil::TempDir::new("tail");
            let path = tmp.path().join("app.log");
            Fixture {
                tailer: Tailer::new(path.clone(), Listener::Check(1), None),
                path,
                _tmp: tmp,
                watches: Watches::new().unwrap(),
                scratch: Scratch::new(max_line),
                got: Record::default(),
                now: Instant::from_millis(0),
            }
        }

        fn append(&self, text: &[u8]) {
            let mut f = fs::OpenOptions::new().create(true).append(true).open(&self.path).unwrap();
            f.write_all(text).unwrap();
        }

        fn sync(&mut self) -> Vec<(u64, String)> {
            let mut budget = usize::MAX;
            while self.tailer.sync(self.now, &mut self.watches, &mut self.scratch, &mut budget, &mut self.got) == Progress::More {}
            std::mem::take(&mut self.got.0)
        }
    }

    fn lines(v: &[(u64, &str)]) -> Vec<(u64, String)> {
        v.iter().map(|(n, s)| (*n, s.to_string())).collect()
    }

    #[test]
    fn waits_for_the_file_and_for_newlines() {
        let mut f = Fixture::new(1024);
        assert!(f.sync().is_empty());
        f.append(b"one\ntw");
        assert_eq!(f.sync(), lines(&[(1, "one")]));
        f.append(b"o\n");
        assert_eq!(f.sync(), lines(&[(2, "two")]));
        assert_eq!(f.tailer.position().map(|p| (p.offset, p.line)), Some((8, 3)));
    }

    #[test]
    fn rename_rotation_reads_the_old_file_to_its_end() {
        let mut f = Fixture::new(1024);
        f.append(b"a\n");
        assert_eq!(f.sync(), lines(&[(1, "a")]));
        // Written before the rotation but not read yet, then a partial line.
        f.append(b"b\nunterminated");
        fs::rename(&f.path, f.path.with_extension("log.1")).unwrap();
        f.append(b"new1\n");
        assert_eq!(f.sync(), lines(&[(2, "b"), (1, "new1")]));
        // The writer still holds the old file: its lines are read until the grace ends.
        let mut old = fs::OpenOptions::new().append(true).open(f.path.with_extension("log.1")).unwrap();
        old.write_all(b" end\n").unwrap();
        assert_eq!(f.sync(), lines(&[(3, "unterminated end")]));
        f.now = f.now.plus_ms(RETIRE_GRACE_MS);
        assert!(f.sync().is_empty());
        assert!(f.tailer.retired.is_none(), "closed after the grace period");
        assert_eq!(f.tailer.counters().rotations, 1);
    }

    #[test]
    fn delete_and_recreate() {
        let mut f = Fixture::new(1024);
        f.append(b"a\n");
        f.sync();
        fs::remove_file(&f.path).unwrap();
        assert!(f.sync().is_empty());
        f.append(b"fresh\n");
        assert_eq!(f.sync(), lines(&[(1, "fresh")]));
    }

    #[test]
    fn copytruncate_reads_the_copys_tail_first() {
        let mut f = Fixture::new(1024);
        f.append(b"a\nb\n");
        assert_eq!(f.sync().len(), 2);
        f.append(b"c\n"); // not read before the rotation
        fs::copy(&f.path, f.path.with_extension("log.1")).unwrap();
        fs::OpenOptions::new().write(true).open(&f.path).unwrap().set_len(0).unwrap();
        f.append(b"d\n");
        assert_eq!(f.sync(), lines(&[(3, "c"), (1, "d")]));
        assert_eq!(f.tailer.counters().copies_recovered, 1);
    }

    #[test]
    fn a_truncation_refilled_before_the_next_read_is_seen() {
        let mut f = Fixture::new(1024);
        f.append(b"a\nb\n");
        f.sync();
        f.append(b"c\n");
        fs::copy(&f.path, f.path.with_extension("log.1")).unwrap();
        fs::OpenOptions::new().write(true).open(&f.path).unwrap().set_len(0).unwrap();
        // Past the old offset before the agent reads again (it was frozen, or the writer fast).
        f.append(b"ERROR right after the truncation\n");
        assert_eq!(f.sync(), lines(&[(3, "c"), (1, "ERROR right after the truncation")]));
        assert_eq!(f.tailer.counters().truncations, 1);
        assert_eq!(f.tailer.counters().copies_recovered, 1);
        // And without a copy: from the start.
        fs::OpenOptions::new().write(true).open(&f.path).unwrap().set_len(0).unwrap();
        fs::remove_file(f.path.with_extension("log.1")).unwrap();
        f.append(b"x: another line that is longer than the first\n");
        assert_eq!(f.sync(), lines(&[(1, "x: another line that is longer than the first")]));
        // An unchanged file is not taken for a rewritten one.
        f.append(b"y\n");
        assert_eq!(f.sync(), lines(&[(2, "y")]));
        assert_eq!(f.tailer.counters().truncations, 2);
    }

    #[test]
    fn plain_truncation_starts_over() {
        let mut f = Fixture::new(1024);
        f.append(b"aaaa\nbbbb\n");
        f.sync();
        fs::OpenOptions::new().write(true).open(&f.path).unwrap().set_len(0).unwrap();
        f.append(b"x\n");
        assert_eq!(f.sync(), lines(&[(1, "x")]));
        assert_eq!(f.tailer.counters().copies_recovered, 0);
    }

    #[test]
    fn long_lines_are_cut_and_counted() {
        let mut f = Fixture::new(100);
        let mut text = vec![b'x'; super::super::lines::READ_CHUNK * 3];
        text.extend_from_slice(b"\nnext\n");
        f.append(&text);
        let got = f.sync();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (1, "x".repeat(100)));
        assert_eq!(got[1], (2, "next".into()));
        assert_eq!(f.tailer.counters().read.long_lines, 1);
    }

    #[test]
    fn budget_limits_one_call() {
        let mut f = Fixture::new(100);
        let text: Vec<u8> = (0..10_000).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        f.append(&text);
        let mut budget = 1000;
        let p = f.tailer.sync(f.now, &mut f.watches, &mut f.scratch, &mut budget, &mut f.got);
        assert_eq!(p, Progress::More);
        assert!(f.got.0.len() < 200);
        let rest = f.sync();
        assert_eq!(rest.last().map(|l| l.0), Some(10_000));
    }

    #[test]
    fn resumes_from_a_saved_position_and_across_rotation_while_stopped() {
        let mut f = Fixture::new(1024);
        f.append(b"a\nb\n");
        f.sync();
        let pos = f.tailer.stop(&mut f.watches).unwrap();
        f.append(b"c\n");
        // Same file: continue after b.
        let mut t = Tailer::new(f.path.clone(), Listener::Check(2), Some(pos));
        let mut budget = usize::MAX;
        t.sync(f.now, &mut f.watches, &mut f.scratch, &mut budget, &mut f.got);
        assert_eq!(std::mem::take(&mut f.got.0), lines(&[(3, "c")]));
        let pos = t.stop(&mut f.watches).unwrap();
        // Rotated while stopped: the old file is found by inode and its rest read first.
        f.append(b"d\n");
        fs::rename(&f.path, f.path.with_extension("log.1")).unwrap();
        f.append(b"e\n");
        let mut t = Tailer::new(f.path.clone(), Listener::Check(3), Some(pos));
        t.sync(f.now, &mut f.watches, &mut f.scratch, &mut budget, &mut f.got);
        assert_eq!(std::mem::take(&mut f.got.0), lines(&[(4, "d"), (1, "e")]));
    }

    #[test]
    fn a_file_truncated_and_rewritten_while_stopped_is_read_from_the_start() {
        let mut f = Fixture::new(1024);
        f.append(b"old one\nold two\n");
        f.sync();
        let pos = f.tailer.stop(&mut f.watches).unwrap();
        assert!(pos.tail.is_some());
        // Same inode, longer than the saved offset, but not what was read.
        fs::OpenOptions::new().write(true).open(&f.path).unwrap().set_len(0).unwrap();
        f.append(b"ERROR new\nand the writer goes on\n");
        let mut t = Tailer::new(f.path.clone(), Listener::Check(2), Some(pos));
        let mut budget = usize::MAX;
        t.sync(f.now, &mut f.watches, &mut f.scratch, &mut budget, &mut f.got);
        assert_eq!(std::mem::take(&mut f.got.0), lines(&[(1, "ERROR new"), (2, "and the writer goes on")]));
        assert_eq!(t.counters().truncations, 1);
        // A resumed position keeps its sum before any new line is read.
        let pos = t.stop(&mut f.watches).unwrap();
        let t = Tailer::new(f.path.clone(), Listener::Check(3), Some(pos));
        assert_eq!(t.position().and_then(|p| p.tail), pos.tail);
        let mut t = t;
        t.sync(f.now, &mut f.watches, &mut f.scratch, &mut budget, &mut f.got);
        assert!(f.got.0.is_empty());
        assert_eq!(t.position().and_then(|p| p.tail), pos.tail);
    }

    #[test]
    fn copytruncate_while_stopped_reads_the_copys_rest_first() {
        let mut f = Fixture::new(1024);
        f.append(b"a\nb\n");
        f.sync();
        let pos = f.tailer.stop(&mut f.watches).unwrap();
        f.append(b"c\n"); // written while stopped, before the rotation
        fs::copy(&f.path, f.path.with_extension("log.1")).unwrap();
        fs::OpenOptions::new().write(true).open(&f.path).unwrap().set_len(0).unwrap();
        f.append(b"d: a longer line than before\n");
        let mut t = Tailer::new(f.path.clone(), Listener::Check(2), Some(pos));
        let mut budget = usize::MAX;
        while t.sync(f.now, &mut f.watches, &mut f.scratch, &mut budget, &mut f.got) == Progress::More {}
        assert_eq!(std::mem::take(&mut f.got.0), lines(&[(3, "c"), (1, "d: a longer line than before")]));
        assert_eq!(t.counters().copies_recovered, 1);
    }

    #[test]
    fn fallback_polling_is_due_a_second_after_each_read() {
        let mut f = Fixture::new(1024);
        f.tailer.fallback_poll = true; // as after a refused watch (inotify limit)
        f.now = Instant::from_millis(5_000);
        f.append(b"a\n");
        assert_eq!(f.sync().len(), 1);
        assert_eq!(f.tailer.next_deadline(), Some(Instant::from_millis(6_000)));
        f.now = Instant::from_millis(6_000);
        f.sync();
        assert_eq!(f.tailer.next_deadline(), Some(Instant::from_millis(7_000)));
    }

    #[test]
    fn nul_bytes_and_invalid_utf8_pass_through() {
        let mut f = Fixture::new(1024);
        f.append(b"a\x00b\n\xff\xfe\n");
        assert_eq!(f.sync(), lines(&[(1, "a\u{0}b"), (2, "\u{fffd}\u{fffd}")]));
    }
}
