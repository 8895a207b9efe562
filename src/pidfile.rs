//! `/var/run/monitoring-client.pid` (under the root prefix), where Mender Monitor keeps its pid
//! and Mender's tests read it. Written when the daemon starts, unless it names another process
//! that is alive (then it is left alone and a warning says so); removed at a clean exit, only
//! if it still holds our pid.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The device path.
pub const PATH: &str = "/var/run/monitoring-client.pid";

/// The pid file this daemon wrote.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

/// The pid a pid file names, if it reads as one: a regular file (opened without blocking, as
/// every file the agent reads) whose first bytes are a number.
fn read_pid(path: &Path) -> Option<i32> {
    let (file, _) = crate::regular_file::open(path).ok()?;
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse::<i32>().ok().filter(|p| *p > 0)
}

/// Whether process `pid` exists (EPERM: it exists, and is not ours to signal).
fn alive(pid: i32) -> bool {
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

impl PidFile {
    /// Writes our pid to `<root>/var/run/monitoring-client.pid`; `None` (logged) if another
    /// live process owns it or it cannot be written.
    pub fn create(root: &Path) -> Option<PidFile> {
        let path = crate::config::layout::prefixed(root, PATH);
        let pid = std::process::id();
        if let Some(other) = read_pid(&path).filter(|p| *p != pid as i32 && alive(*p)) {
            crate::warn!("{} names pid {other}, which is running; leaving it alone", path.display());
            return None;
        }
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension(format!("pid.{pid}.tmp"));
            let mut f = fs::File::create(&tmp)?;
            writeln!(f, "{pid}")?;
            fs::rename(&tmp, &path)
        };
        match write() {
            Ok(()) => Some(PidFile { path, pid }),
            Err(e) => {
                crate::warn!("cannot write {}: {e}", path.display());
                None
            }
        }
    }

    /// Removes the file if it still names us.
    pub fn remove(self) {
        if read_pid(&self.path) == Some(self.pid as i32) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_replaced_when_stale_and_left_when_live() {
        let root = crate::testutil::TempDir::new("pidfile");
        let path = root.path().join("var/run/monitoring-client.pid");
        let p = PidFile::create(root.path()).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id() as i32));
        p.remove();
        assert!(!path.exists());
        // pid 1 is alive: not ours to replace.
        fs::write(&path, "1\n").unwrap();
        assert!(PidFile::create(root.path()).is_none());
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");
        // A pid that does not exist (beyond pid_max) is stale.
        fs::write(&path, "2147483646\n").unwrap();
        let p = PidFile::create(root.path()).unwrap();
        assert_eq!(read_pid(&path), Some(std::process::id() as i32));
        // Someone else's now: not removed.
        fs::write(&path, "1\n").unwrap();
        p.remove();
        assert!(path.exists());
    }
}
