//! Alerts handed in from outside the daemon (`lookout send-alert`, Mender's
//! `monitor_send_alert`): one file each in `<state dir>/inbox/`, which the daemon takes into
//! its spool and then deletes. The spool itself stays the daemon's alone: the CLI never writes
//! a segment, so no lock is needed between them and a daemon starting meanwhile cannot see a
//! half-written record.
//!
//! A file appears only whole: written under a dot-name, fsynced, then renamed to
//! `<unix ns>-<pid>.json` (names sort in the order they were sent) and the directory fsynced.
//! The daemon watches the directory (inotify, `IN_MOVED_TO`) before it first reads it, so a
//! file renamed in at any moment of a start is seen; the CLI also asks a running daemon to take
//! it at once, and learns from the answer that it is spooled. Bounded: at most [`MAX_FILES`]
//! files wait (the CLI refuses more), each at most [`MAX_FILE_BYTES`].

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::alert::Alert;
use crate::state::{FILE_MODE, private_dir};

/// Most alert files that may wait.
pub const MAX_FILES: usize = 1000;
/// Largest alert file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The inbox under the state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("inbox")
}

fn waiting(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b".")))
        .collect();
    files.sort();
    Ok(files)
}

/// Puts `alert` in the inbox; returns its file.
///
/// # Errors
/// The directory cannot be made, [`MAX_FILES`] are waiting already, or the write fails.
pub fn put(dir: &Path, alert: &Alert, unix_ns: u128) -> Result<PathBuf, String> {
    private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let n = waiting(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?.len();
    if n >= MAX_FILES {
        return Err(format!("{n} alerts already wait in {} for the daemon; not adding more", dir.display()));
    }
    let name = format!("{unix_ns:039}-{}.json", std::process::id());
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(&tmp)?;
        f.write_all(alert.to_json().as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })?;
    Ok(path)
}

/// One waiting file: its alert, or why it cannot be sent.
pub type Taken = (PathBuf, Result<Alert, String>);

/// Reads every waiting file, oldest first (at most [`MAX_FILES`] at a time).
pub fn take(dir: &Path) -> Vec<Taken> {
    let Ok(files) = waiting(dir) else { return Vec::new() };
    files.into_iter().take(MAX_FILES).map(|p| (p.clone(), read(&p))).collect()
}

fn read(path: &Path) -> Result<Alert, String> {
    let (file, meta) = crate::regular_file::open(path).map_err(|e| format!("{}: cannot open: {e:?}", path.display()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("{}: larger than {MAX_FILE_BYTES} bytes", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let alert: Alert = serde_json::from_slice(&bytes).map_err(|e| format!("{}: not an alert: {e}", path.display()))?;
    check(&alert).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(alert)
}

/// What an alert from outside must have: a name, a subject name and type, a timestamp.
pub fn check(a: &Alert) -> Result<(), String> {
    for (what, v) in [("name", &a.name), ("subject name", &a.subject.name), ("subject type", &a.subject.kind), ("timestamp", &a.timestamp)]
    {
        if v.trim().is_empty() {
            return Err(format!("the alert's {what} is empty"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Level, Subject};

    fn alert(name: &str) -> Alert {
        Alert {
            name: name.into(),
            level: Level::Ok,
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            subject: Subject { name: "svc".into(), kind: "service".into(), status: "running".into(), details: None },
        }
    }

    #[test]
    fn files_come_back_in_order_and_bad_ones_say_why() {
        let tmp = crate::testutil::TempDir::new("inbox");
        let d = dir(tmp.path());
        put(&d, &alert("second"), 20).unwrap();
        put(&d, &alert("first"), 10).unwrap();
        fs::write(d.join(".half-written.json.tmp"), b"{").unwrap();
        fs::write(d.join("0-junk.json"), b"not json").unwrap();
        let got = take(&d);
        assert_eq!(got.len(), 3);
        assert!(got[0].1.as_ref().is_err_and(|e| e.contains("not an alert")));
        assert_eq!(got[1].1.as_ref().unwrap().name, "first");
        assert_eq!(got[2].1.as_ref().unwrap().name, "second");
        assert!(check(&alert(" ")).is_err());
    }
}
