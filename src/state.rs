//! What survives a restart: per check, where reading stopped (device, inode, offset, line) and
//! whether it is CRITICAL. One small JSON file in the state directory, replaced atomically
//! (write, fsync, rename), written only when something changed and at most every
//! `STATE_SAVE_INTERVAL_S` (or at once when an alert changes a check's level), so a busy log
//! does not wear the flash.
//!
//! The state directory and everything in it (this file, the spool) are private: alerts quote
//! lines of logs that may be readable by root only. Directories are created 0700 and files 0600
//! whatever the umask ([`private_dir`], [`make_private`]); wider modes found at start are
//! narrowed, and that is logged.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use serde::{Deserialize, Serialize};

use crate::sources::tail::{FileIdentity, Position, TailSum};

/// The file name inside the state directory.
pub const FILE_NAME: &str = "lookout-state.json";
const VERSION: u32 = 1;
/// Mode of the state directory and the spool directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in them.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with [`DIR_MODE`], or narrows an existing `dir` to it.
/// Returns what it had to narrow, to log (the parents are left as they are).
///
/// # Errors
/// The directory cannot be created or its mode cannot be read or set.
pub fn private_dir(dir: &Path) -> io::Result<Option<String>> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
    Ok(Some(format!("{} was open to other users (mode {mode:04o}); made it private ({DIR_MODE:04o})", dir.display())))
}

/// Narrows a regular file found with group or other bits to [`FILE_MODE`]; whether it had to.
/// Anything but a regular file (a link, a directory) is left alone.
///
/// # Errors
/// Its mode cannot be read or set.
pub fn make_private(path: &Path) -> io::Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, Permissions::from_mode(FILE_MODE))?;
    Ok(true)
}

/// Replaces `path` with `contents` atomically (write a private temporary file, fsync, rename).
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&tmp)?;
        // A temporary file left by a crash keeps its old mode through open.
        f.set_permissions(Permissions::from_mode(FILE_MODE))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            // Persist the rename; a failure here only weakens durability, never correctness.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A saved read position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPosition {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
    /// Byte offset of the next line.
    pub offset: u64,
    /// Its 1-based number.
    pub line: u64,
    /// The last bytes read before `offset`, summed: whether the file still holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<SavedTail>,
    /// The file's first bytes as learned, summed: whether the file still starts with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<SavedTail>,
}

/// [`TailSum`] as saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTail {
    /// How many bytes.
    pub len: u8,
    /// Their CRC-32C.
    pub crc32c: u32,
}

impl From<Position> for SavedPosition {
    fn from(p: Position) -> Self {
        let saved = |t: TailSum| SavedTail { len: t.len, crc32c: t.crc };
        SavedPosition { dev: p.id.dev, ino: p.id.ino, offset: p.offset, line: p.line, tail: p.tail.map(saved), head: p.head.map(saved) }
    }
}

impl From<SavedPosition> for Position {
    fn from(p: SavedPosition) -> Self {
        // Line numbers are 1-based; a hand-edited 0 must not make them start below 1.
        let sum = |t: SavedTail| TailSum { len: t.len, crc: t.crc32c };
        let (tail, head) = (p.tail.map(sum), p.head.map(sum));
        Position { id: FileIdentity { dev: p.dev, ino: p.ino }, offset: p.offset, line: p.line.max(1), tail, head }
    }
}

/// A CRITICAL to carry across a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCritical {
    /// The alert's name, to clear the right one if the check changed while stopped.
    pub alert_name: String,
    /// Wall-clock time of the last match, Unix ms.
    pub last_match_unix_ms: u64,
}

/// One check's saved state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    /// The `LOG_FILE` the position belongs to.
    pub source: String,
    /// Where reading stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<SavedPosition>,
    /// Set while the check is CRITICAL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<SavedCritical>,
    /// Set while a service check's "going up and down" alert is open.
    #[serde(default, skip_serializing_if = "is_false")]
    pub flapping: bool,
    /// A log CRITICAL raised and still waiting for its after-lines, as it stands: the position
    /// above is past its match, so after a crash it is sent from here (it is in no spool yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<crate::alert::Alert>,
}

impl CheckState {
    /// The state of a check that keeps no read position (program, diskusage, connectivity):
    /// its source, and the name of its open alert if one is open, as of `now`.
    pub fn alert_only(source: String, open_alert: Option<String>, now: crate::time::Wall) -> CheckState {
        CheckState {
            source,
            position: None,
            critical: open_alert.map(|alert_name| SavedCritical { alert_name, last_match_unix_ms: now.as_unix_ms() }),
            flapping: false,
            pending: None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    checks: BTreeMap<String, CheckState>,
}

/// The state file.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    /// The latest state handed to be written (what the file holds once the writer is done).
    saved: BTreeMap<String, CheckState>,
    /// Saves done, and saves that failed (synchronous ones; see [`saves`](Self::saves)).
    saves: u64,
    save_errors: u64,
    /// The last synchronous save failed.
    sync_failed: bool,
    /// Writes off the reactor, once started.
    writer: Option<Writer>,
}

/// What the reactor and the writer thread share: the newest state not yet written (an older
/// one waiting is replaced: only the latest matters), and the outcome of the writes.
#[derive(Debug, Default)]
struct Desk {
    next: Option<Vec<u8>>,
    busy: bool,
    stop: bool,
    saves: u64,
    errors: u64,
    last_failed: bool,
    /// The longest write, ms.
    slowest_ms: u64,
}

/// The state writer: one thread that replaces the state file (write, fsync, rename, fsync of
/// the directory), so the reactor never waits on it. Under a disk busy with other writes that
/// took up to 156 ms here (`bench/latency.sh`, loaded), during which no check was read.
#[derive(Debug)]
struct Writer {
    desk: Arc<(Mutex<Desk>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

fn lock(desk: &Mutex<Desk>) -> MutexGuard<'_, Desk> {
    desk.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    fn start(path: PathBuf) -> io::Result<Writer> {
        let desk: Arc<(Mutex<Desk>, Condvar)> = Arc::default();
        let theirs = Arc::clone(&desk);
        let thread = thread::Builder::new().name("state".into()).spawn(move || Writer::run(&path, &theirs))?;
        Ok(Writer { desk, thread: Some(thread) })
    }

    fn run(path: &Path, desk: &(Mutex<Desk>, Condvar)) {
        let (m, cv) = desk;
        loop {
            let bytes = {
                let mut d = lock(m);
                while d.next.is_none() && !d.stop {
                    d = cv.wait(d).unwrap_or_else(PoisonError::into_inner);
                }
                let Some(bytes) = d.next.take() else { return };
                d.busy = true;
                bytes
            };
            let took = crate::time::Stopwatch::start();
            let result = write_state(path, &bytes);
            let mut d = lock(m);
            d.slowest_ms = d.slowest_ms.max(took.elapsed_ms());
            d.busy = false;
            d.last_failed = result.is_err();
            match result {
                Ok(()) => d.saves += 1,
                Err(e) => {
                    d.errors += 1;
                    crate::error!("cannot save read positions: {e}");
                }
            }
            cv.notify_all();
        }
    }

    /// Hands over the newest state; an older one not yet written is dropped.
    fn submit(&self, bytes: Vec<u8>) {
        let (m, cv) = &*self.desk;
        lock(m).next = Some(bytes);
        cv.notify_all();
    }

    /// Writes what is waiting, then ends the thread.
    fn finish(mut self) -> (u64, u64, bool) {
        let (m, cv) = &*self.desk;
        lock(m).stop = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let d = lock(m);
        (d.saves, d.errors, d.last_failed)
    }
}

/// Replaces the state file at `path`, creating its private directory if needed.
fn write_state(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let written = match path.parent() {
        Some(dir) => private_dir(dir).and_then(|_| write_private(path, bytes)),
        None => write_private(path, bytes),
    };
    written.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl StateStore {
    /// Reads the state in `dir`. A missing file is a first start; an unreadable one is reported
    /// and treated as empty (every check then reads its file from the start). A directory or
    /// file open to other users is made private (and reported).
    pub fn load(dir: &Path) -> (StateStore, Option<String>) {
        let path = dir.join(FILE_NAME);
        let mut notes = Vec::new();
        if dir.is_dir() {
            match private_dir(dir) {
                Ok(fixed) => notes.extend(fixed),
                Err(e) => notes.push(format!("{}: cannot make it private: {e}", dir.display())),
            }
        }
        match make_private(&path) {
            Ok(true) => notes.push(format!("{} was readable by other users; made it private ({FILE_MODE:04o})", path.display())),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => notes.push(format!("{}: cannot make it private: {e}", path.display())),
        }
        let (store, warning) = StateStore::read(path);
        notes.extend(warning);
        (store, (!notes.is_empty()).then(|| notes.join("; ")))
    }

    fn read(path: PathBuf) -> (StateStore, Option<String>) {
        let mut warning = None;
        let saved = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(f) if f.version == VERSION => f.checks,
                Ok(f) => {
                    warning = Some(format!("{}: unknown version {}; starting without saved positions", path.display(), f.version));
                    BTreeMap::new()
                }
                Err(e) => {
                    warning = Some(format!("{}: unreadable ({e}); starting without saved positions", path.display()));
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                warning = Some(format!("{}: {e}; starting without saved positions", path.display()));
                BTreeMap::new()
            }
        };
        (StateStore { path, saved, saves: 0, save_errors: 0, sync_failed: false, writer: None }, warning)
    }

    /// The state saved for `key`.
    pub fn get(&self, key: &str) -> Option<&CheckState> {
        self.saved.get(key)
    }

    /// Every saved entry.
    pub fn entries(&self) -> BTreeMap<String, CheckState> {
        self.saved.clone()
    }

    /// Replaces the whole state with `checks` and writes it if it differs from what was last
    /// written (or the last write failed): on the writer thread once [`start_writer`] ran, else
    /// here. The reactor calls this only once the alerts before these positions are in the
    /// spool, so whichever snapshot the file holds is never past an alert a crash would lose.
    ///
    /// [`start_writer`]: Self::start_writer
    pub fn save(&mut self, checks: BTreeMap<String, CheckState>) -> io::Result<()> {
        if checks == self.saved && !self.last_failed() {
            return Ok(());
        }
        let file = StateFile { version: VERSION, checks };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        self.saved = file.checks;
        match &self.writer {
            Some(w) => {
                w.submit(bytes);
                Ok(())
            }
            None => {
                let result = write_state(&self.path, &bytes);
                self.sync_failed = result.is_err();
                match result.is_ok() {
                    true => self.saves += 1,
                    false => self.save_errors += 1,
                }
                result
            }
        }
    }

    fn last_failed(&self) -> bool {
        match &self.writer {
            Some(w) => lock(&w.desk.0).last_failed,
            None => self.sync_failed,
        }
    }

    /// From now on, saves are written by a thread of their own (the daemon's reactor must not
    /// wait on the disk). Without a thread (it could not start), they stay synchronous.
    pub fn start_writer(&mut self) -> io::Result<()> {
        if self.writer.is_none() {
            self.writer = Some(Writer::start(self.path.clone())?);
        }
        Ok(())
    }

    /// Writes what waits and ends the writer thread: later saves are synchronous (the last one
    /// at shutdown must be on disk before the process exits).
    pub fn finish_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            let (saves, errors, failed) = w.finish();
            self.saves += saves;
            self.save_errors += errors;
            self.sync_failed = failed;
        }
    }

    /// Saves done.
    pub fn saves(&self) -> u64 {
        self.saves + self.writer.as_ref().map_or(0, |w| lock(&w.desk.0).saves)
    }

    /// Saves that failed (the previous file stays).
    pub fn save_errors(&self) -> u64 {
        self.save_errors + self.writer.as_ref().map_or(0, |w| lock(&w.desk.0).errors)
    }

    /// The longest write of the state file by the writer thread, ms (rounded up).
    pub fn slowest_write_ms(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| lock(&w.desk.0).slowest_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: u64) -> BTreeMap<String, CheckState> {
        let mut m = BTreeMap::new();
        let position = SavedPosition { dev: 1, ino: 2, offset: line * 10, line, tail: None, head: None };
        m.insert(
            "log_a".to_string(),
            CheckState { source: "/a.log".into(), position: Some(position), critical: None, flapping: false, pending: None },
        );
        m
    }

    fn on_disk(dir: &Path) -> Option<u64> {
        let (store, _) = StateStore::load(dir);
        store.get("log_a").and_then(|c| c.position).map(|p| p.line)
    }

    #[test]
    fn the_writer_thread_writes_the_newest_state_and_the_last_one_at_finish() {
        let dir = crate::testutil::TempDir::new("state-writer");
        let (mut store, _) = StateStore::load(dir.path());
        store.start_writer().unwrap();
        for line in 1..=50 {
            store.save(one(line)).unwrap();
        }
        // Unchanged: nothing new to write.
        store.save(one(50)).unwrap();
        store.finish_writer();
        assert_eq!(on_disk(dir.path()), Some(50));
        // Between 1 (each replaced the one waiting) and 50 writes, no error.
        assert!((1..=50).contains(&store.saves()), "{}", store.saves());
        assert_eq!(store.save_errors(), 0);
        // After finish, saves are synchronous.
        store.save(one(51)).unwrap();
        assert_eq!(on_disk(dir.path()), Some(51));
    }

    #[test]
    fn a_failed_write_is_counted_and_the_same_state_is_tried_again() {
        let dir = crate::testutil::TempDir::new("state-writer-fail");
        // The state directory's place is taken by a file: every write fails.
        let blocked = dir.path().join("state");
        fs::write(&blocked, b"not a directory").unwrap();
        let (mut store, _) = StateStore::load(&blocked);
        store.start_writer().unwrap();
        store.save(one(1)).unwrap();
        store.finish_writer();
        assert_eq!((store.saves(), store.save_errors()), (0, 1));
        // The same state again is not skipped as already written: it failed.
        fs::remove_file(&blocked).unwrap();
        store.save(one(1)).unwrap();
        assert_eq!(on_disk(&blocked), Some(1));
        assert_eq!((store.saves(), store.save_errors()), (1, 1));
    }

    #[test]
    fn a_position_saved_without_a_tail_still_loads() {
        let p: SavedPosition = serde_json::from_str(r#"{"dev": 1, "ino": 2, "offset": 3, "line": 4}"#).unwrap();
        assert_eq!(Position::from(p).tail, None);
    }

    #[test]
    fn round_trips_and_the_format_is_stable() {
        let tmp = crate::testutil::TempDir::new("state");
        // As the agent creates it (a wider one is narrowed, with a warning: tested below).
        fs::set_permissions(tmp.path(), Permissions::from_mode(DIR_MODE)).unwrap();
        let (mut s, w) = StateStore::load(tmp.path());
        assert!(w.is_none());
        let mut checks = BTreeMap::new();
        checks.insert(
            "log_crasher_app".to_string(),
            CheckState {
                source: "/root/crasher.log".into(),
                position: Some(SavedPosition {
                    dev: 2049,
                    ino: 77,
                    offset: 120,
                    line: 5,
                    tail: Some(SavedTail { len: 64, crc32c: 7 }),
                    head: None,
                }),
                critical: Some(SavedCritical { alert_name: "Log file contains ERROR".into(), last_match_unix_ms: 1_795_946_400_000 }),
                flapping: false,
                pending: None,
            },
        );
        s.save(checks.clone()).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            text,
            r#"{
  "version": 1,
  "checks": {
    "log_crasher_app": {
      "source": "/root/crasher.log",
      "position": {
        "dev": 2049,
        "ino": 77,
        "offset": 120,
        "line": 5,
        "tail": {
          "len": 64,
          "crc32c": 7
        }
      },
      "critical": {
        "alert_name": "Log file contains ERROR",
        "last_match_unix_ms": 1795946400000
      }
    }
  }
}"#
        );
        let (again, _) = StateStore::load(tmp.path());
        assert_eq!(again.get("log_crasher_app"), checks.get("log_crasher_app"));
        s.save(checks).unwrap();
        assert_eq!(s.saves, 1, "unchanged state is not written again");
    }

    #[test]
    fn the_state_is_private_whatever_the_umask() {
        let tmp = crate::testutil::TempDir::new("state-modes");
        let dir = tmp.path().join("lib");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let (mut s, w) = StateStore::load(&dir);
        assert!(w.is_none(), "{w:?}");
        s.save(BTreeMap::from([(
            "k".to_string(),
            CheckState { source: "x".into(), position: None, critical: None, flapping: false, pending: None },
        )]))
        .unwrap();
        assert_eq!((mode(&dir), mode(&dir.join(FILE_NAME))), (0o700, 0o600));
        // An older install left them open: narrowed at the next start, and said.
        fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join(FILE_NAME), Permissions::from_mode(0o644)).unwrap();
        let (again, w) = StateStore::load(&dir);
        let w = w.unwrap();
        assert!(w.contains("mode 0755") && w.contains("readable by other users"), "{w}");
        assert_eq!((mode(&dir), mode(&dir.join(FILE_NAME))), (0o700, 0o600));
        assert!(again.get("k").is_some());
        assert!(StateStore::load(&dir).1.is_none(), "said once");
    }

    #[test]
    fn a_corrupt_file_is_reported_not_fatal() {
        let tmp = crate::testutil::TempDir::new("state");
        std::fs::write(tmp.path().join(FILE_NAME), b"{\"version\":1,\"checks\":{\"x\":").unwrap();
        let (s, w) = StateStore::load(tmp.path());
        assert!(w.unwrap().contains("unreadable"));
        assert!(s.get("x").is_none());
    }
}
