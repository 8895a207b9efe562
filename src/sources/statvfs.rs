//! How full a file system is: one `statvfs(2)` call, its numbers put the way `df` reads them.
//!
//! `statvfs` is a single syscall that local file systems answer from memory; on a network file
//! system whose server is gone it can block (a known limit: the reactor would wait with it).

use std::path::Path;

use crate::detect::diskusage::{Fill, Usage};

/// Widens a count of whatever width the C library gives (32 bits on armv7 glibc).
fn wide<T: Into<u64>>(v: T) -> u64 {
    v.into()
}

/// The use of the file system holding `path`: space in bytes (blocks of the fragment size, used
/// = total − free, available = what non-root users may still use) and inodes (used = total −
/// free; none where the file system reports no inode count).
///
/// # Errors
/// The syscall's error, as a sentence (`No such file or directory`, `Permission denied`).
pub fn measure(path: &Path) -> Result<Usage, String> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| e.desc().to_string())?;
    let unit = match wide(s.fragment_size()) {
        0 => wide(s.block_size()).max(1),
        f => f,
    };
    let blocks = wide(s.blocks());
    let used_blocks = blocks.saturating_sub(wide(s.blocks_free()));
    let space = Fill { used: used_blocks.saturating_mul(unit), avail: wide(s.blocks_available()).saturating_mul(unit) };
    let files = wide(s.files());
    let inodes = (files > 0).then(|| {
        let free = wide(s.files_free()).min(files);
        Fill { used: files - free, avail: free }
    });
    Ok(Usage { space, inodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_the_root_file_system() {
        let u = measure(Path::new("/")).unwrap();
        assert!(u.space.total() > 0);
        assert!(u.space.percent() <= 100);
    }

    #[test]
    fn a_missing_path_is_a_sentence() {
        assert_eq!(measure(Path::new("/no/such/mount/point")), Err("No such file or directory".to_string()));
    }
}
