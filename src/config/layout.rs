//! Where things live on the device, as Mender Monitor lays them out, under an optional root
//! prefix (`--root DIR` or `LOOKOUT_ROOT`) so tests and demos run anywhere. Paths inside check
//! files (`LOG_FILE`) are not prefixed: they are used as written.

use std::path::{Path, PathBuf};

/// Device path of the checks directory (`MONITOR_D_DIRECTORY` can move it).
pub const MONITOR_D: &str = "/etc/mender-monitor/monitor.d";
/// Device path of the global settings file.
pub const CONFIG_SH: &str = "/usr/share/mender-monitor/config/config.sh";
/// Device path of the state directory (a link to `/data/mender-monitor` on Mender images).
pub const STATE_DIR: &str = "/var/lib/mender-monitor";

/// The device paths, resolved under a root prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
    monitor_d: PathBuf,
}

impl Layout {
    /// The layout under `root` (`/` on a device).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let monitor_d = prefixed(&root, MONITOR_D);
        Layout { root, monitor_d }
    }

    /// Moves `monitor.d` to the device path `dir` (from `MONITOR_D_DIRECTORY`).
    pub fn with_monitor_d(mut self, dir: &str) -> Self {
        self.monitor_d = prefixed(&self.root, dir);
        self
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `monitor.d`.
    pub fn monitor_d(&self) -> &Path {
        &self.monitor_d
    }

    /// `monitor.d/available`: every defined check.
    pub fn available(&self) -> PathBuf {
        self.monitor_d.join("available")
    }

    /// `monitor.d/enabled`: a link per enabled check.
    pub fn enabled(&self) -> PathBuf {
        self.monitor_d.join("enabled")
    }

    /// `config.sh`.
    pub fn config_sh(&self) -> PathBuf {
        prefixed(&self.root, CONFIG_SH)
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        prefixed(&self.root, STATE_DIR)
    }
}

/// `device_path` under `root`.
pub fn prefixed(root: &Path, device_path: &str) -> PathBuf {
    root.join(device_path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_take_the_root_prefix() {
        let l = Layout::new("/tmp/r");
        assert_eq!(l.available(), Path::new("/tmp/r/etc/mender-monitor/monitor.d/available"));
        assert_eq!(l.enabled(), Path::new("/tmp/r/etc/mender-monitor/monitor.d/enabled"));
        assert_eq!(l.config_sh(), Path::new("/tmp/r/usr/share/mender-monitor/config/config.sh"));
        assert_eq!(l.state_dir(), Path::new("/tmp/r/var/lib/mender-monitor"));
        assert_eq!(Layout::new("/").available(), Path::new("/etc/mender-monitor/monitor.d/available"));
        let moved = Layout::new("/tmp/r").with_monitor_d("/opt/md");
        assert_eq!(moved.enabled(), Path::new("/tmp/r/opt/md/enabled"));
    }
}
