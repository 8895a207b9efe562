//! The checks in `monitor.d`: which are available, which are enabled, and their definitions.
//! Shared by the CLI (which edits the directory) and the daemon (which follows it).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::check::{CheckId, LoadedCheck, parse_check};
use super::file::{self, Links, ReadError};
use super::layout::Layout;
use super::settings::ConfigError;

/// A check as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckEntry {
    /// Which check.
    pub id: CheckId,
    /// `available/<file>`, whether or not it exists.
    pub available: PathBuf,
    /// Whether `available/<file>` exists.
    pub is_available: bool,
    /// Whether `enabled/<file>` exists (a link, or a copy).
    pub is_enabled: bool,
}

/// Lists every check in `available/` and `enabled/`, sorted by subsystem and name.
pub fn list(layout: &Layout) -> io::Result<Vec<CheckEntry>> {
    let mut entries: Vec<CheckEntry> = Vec::new();
    for (dir, enabled) in [(layout.available(), false), (layout.enabled(), true)] {
        for id in check_ids(&dir)? {
            let available = layout.available().join(id.file_name());
            match entries.iter_mut().find(|e| e.id == id) {
                Some(e) => e.is_enabled |= enabled,
                None => entries.push(CheckEntry { is_available: available.exists(), available, id, is_enabled: enabled }),
            }
        }
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}

/// The check ids of the `*.sh` files in `dir` (none if it does not exist).
pub fn check_ids(dir: &Path) -> io::Result<Vec<CheckId>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    let mut ids = Vec::new();
    for entry in rd {
        let entry = entry?;
        if let Some(id) = entry.file_name().to_str().and_then(CheckId::from_file_name) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Reads the check file `available/<file>` at `path`: a small regular file, not a link.
pub fn load(id: &CheckId, path: &Path) -> LoadedCheck {
    let file = path.display().to_string();
    match file::read(path, Links::Refuse) {
        Ok(bytes) => parse_check(id, &file, &bytes),
        Err(e) => failed(id, &file, e.to_string()),
    }
}

/// Reads the check behind `enabled/<file>` at `path`: a copy, or a link to a small regular
/// file inside monitor.d. A link elsewhere, to anything else, or in a loop is refused.
pub fn load_enabled_file(layout: &Layout, id: &CheckId, path: &Path) -> LoadedCheck {
    let file = path.display().to_string();
    let target = fs::read_link(path).ok();
    let refused = |what: String| match &target {
        Some(t) => format!("links to {}, which {what}", t.display()),
        None => what,
    };
    match file::read(path, Links::Follow) {
        Ok(bytes) => match outside(layout, path) {
            Some(real) => {
                let message = format!("links to {}, outside {}; not read", real.display(), layout.monitor_d().display());
                failed(id, &file, file::refuse(message).to_string())
            }
            None => parse_check(id, &file, &bytes),
        },
        Err(ReadError::NotFound) if target.is_some() => failed(id, &file, refused("does not exist".into())),
        Err(e @ ReadError::Refused(_)) => failed(id, &file, refused(e.to_string())),
        Err(e) => failed(id, &file, e.to_string()),
    }
}

/// Where the link at `path` leads, if that is outside monitor.d.
fn outside(layout: &Layout, path: &Path) -> Option<PathBuf> {
    if !path.is_symlink() {
        return None;
    }
    let real = fs::canonicalize(path).ok()?;
    let monitor_d = fs::canonicalize(layout.monitor_d()).unwrap_or_else(|_| layout.monitor_d().to_path_buf());
    (!real.starts_with(&monitor_d)).then_some(real)
}

/// Reads a listed check: its file in `available/` and, if enabled, what its entry in `enabled/`
/// leads to (a link out of monitor.d, a loop): a problem with either makes `def` an error.
pub fn load_entry(layout: &Layout, entry: &CheckEntry) -> LoadedCheck {
    let mut loaded = load(&entry.id, &entry.available);
    if entry.is_enabled && loaded.def.is_ok() {
        if let Err(errors) = load_enabled_file(layout, &entry.id, &layout.enabled().join(entry.id.file_name())).def {
            loaded.def = Err(errors);
        }
    }
    loaded
}

fn failed(id: &CheckId, file: &str, message: String) -> LoadedCheck {
    LoadedCheck {
        id: id.clone(),
        def: Err(vec![ConfigError { file: file.into(), line: None, message }]),
        warnings: Vec::new(),
        vars: Vec::new(),
    }
}

/// Reads every enabled check through its entry in `enabled/`.
pub fn load_enabled(layout: &Layout) -> io::Result<Vec<LoadedCheck>> {
    let dir = layout.enabled();
    Ok(check_ids(&dir)?.into_iter().map(|id| load_enabled_file(layout, &id, &dir.join(id.file_name()))).collect())
}

/// Writes `contents` to `path` so that a reader sees the old file or the new one, never half.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A dot name is not `*.sh`, so the daemon never reads the temporary file as a check.
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_available_and_enabled() {
        let tmp = crate::testutil::TempDir::new("store");
        let layout = Layout::new(tmp.path());
        fs::create_dir_all(layout.available()).unwrap();
        fs::create_dir_all(layout.enabled()).unwrap();
        fs::write(layout.available().join("log_a.sh"), "LOG_PATTERN=x\nLOG_FILE=/x\n").unwrap();
        fs::write(layout.available().join("service_b_c.sh"), "SERVICE_TYPE=systemd\n").unwrap();
        fs::write(layout.available().join("README"), "not a check").unwrap();
        std::os::unix::fs::symlink(layout.available().join("log_a.sh"), layout.enabled().join("log_a.sh")).unwrap();
        std::os::unix::fs::symlink(layout.available().join("log_gone.sh"), layout.enabled().join("log_gone.sh")).unwrap();
        let l = list(&layout).unwrap();
        let got: Vec<_> = l.iter().map(|e| (e.id.to_string(), e.is_available, e.is_enabled)).collect();
        assert_eq!(got, vec![("log a".into(), true, true), ("log gone".into(), false, true), ("service b_c".into(), true, false)]);
        let enabled = load_enabled(&layout).unwrap();
        assert!(enabled[0].def.is_ok());
        let gone = enabled[1].def.as_ref().unwrap_err()[0].to_string();
        assert!(gone.contains("log_gone.sh") && gone.contains("does not exist"), "{gone}");
        assert!(gone.contains("links to ") && gone.contains("available/log_gone.sh"), "{gone}");
    }
}
