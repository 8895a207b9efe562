//! What survives a restart: per check, where reading stopped (device, inode, offset, line) and
//! whether it is CRITICAL. One small JSON file in the state directory, replaced atomically
//! (write, fsync, rename), written only when something changed and at most every
//! `STATE_SAVE_INTERVAL_S` (or at once when an alert changes a check's level), so a busy log
//! does not wear the flash.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sources::tail::{FileIdentity, Position, TailSum};

/// The file name inside the state directory.
pub const FILE_NAME: &str = "lookout-state.json";
const VERSION: u32 = 1;

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
        let tail = p.tail.map(|t| SavedTail { len: t.len, crc32c: t.crc });
        SavedPosition { dev: p.id.dev, ino: p.id.ino, offset: p.offset, line: p.line, tail }
    }
}

impl From<SavedPosition> for Position {
    fn from(p: SavedPosition) -> Self {
        // Line numbers are 1-based; a hand-edited 0 must not make them start below 1.
        let tail = p.tail.map(|t| TailSum { len: t.len, crc: t.crc32c });
        Position { id: FileIdentity { dev: p.dev, ino: p.ino }, offset: p.offset, line: p.line.max(1), tail }
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
    saved: BTreeMap<String, CheckState>,
    /// Saves done, and saves that failed.
    pub saves: u64,
    /// Saves that failed (the previous file stays).
    pub save_errors: u64,
}

impl StateStore {
    /// Reads the state in `dir`. A missing file is a first start; an unreadable one is reported
    /// and treated as empty (every check then reads its file from the start).
    pub fn load(dir: &Path) -> (StateStore, Option<String>) {
        let path = dir.join(FILE_NAME);
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
        (StateStore { path, saved, saves: 0, save_errors: 0 }, warning)
    }

    /// The state saved for `key`.
    pub fn get(&self, key: &str) -> Option<&CheckState> {
        self.saved.get(key)
    }

    /// Every saved entry.
    pub fn entries(&self) -> BTreeMap<String, CheckState> {
        self.saved.clone()
    }

    /// Replaces the whole state with `checks` and writes it if it differs from what is on disk.
    pub fn save(&mut self, checks: BTreeMap<String, CheckState>) -> io::Result<()> {
        if checks == self.saved {
            return Ok(());
        }
        let file = StateFile { version: VERSION, checks };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match crate::config::store::write_atomically(&self.path, &bytes) {
            Ok(()) => {
                self.saves += 1;
                self.saved = file.checks;
                Ok(())
            }
            Err(e) => {
                self.save_errors += 1;
                Err(io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_saved_without_a_tail_still_loads() {
        let p: SavedPosition = serde_json::from_str(r#"{"dev": 1, "ino": 2, "offset": 3, "line": 4}"#).unwrap();
        assert_eq!(Position::from(p).tail, None);
    }

    #[test]
    fn round_trips_and_the_format_is_stable() {
        let tmp = crate::testutil::TempDir::new("state");
        let (mut s, w) = StateStore::load(tmp.path());
        assert!(w.is_none());
        let mut checks = BTreeMap::new();
        checks.insert(
            "log_crasher_app".to_string(),
            CheckState {
                source: "/root/crasher.log".into(),
                position: Some(SavedPosition { dev: 2049, ino: 77, offset: 120, line: 5, tail: Some(SavedTail { len: 64, crc32c: 7 }) }),
                critical: Some(SavedCritical { alert_name: "Log file contains ERROR".into(), last_match_unix_ms: 1_795_946_400_000 }),
                flapping: false,
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
    fn a_corrupt_file_is_reported_not_fatal() {
        let tmp = crate::testutil::TempDir::new("state");
        std::fs::write(tmp.path().join(FILE_NAME), b"{\"version\":1,\"checks\":{\"x\":").unwrap();
        let (s, w) = StateStore::load(tmp.path());
        assert!(w.unwrap().contains("unreadable"));
        assert!(s.get("x").is_none());
    }
}
