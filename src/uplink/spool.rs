//! The spool's files, in the state directory (`/var/lib/mender-monitor/spool/`):
//!
//! - `<id>.seg`: segment files of [records](super::record), 16 hex digits of id. The reactor
//!   appends to the newest (the head) and starts a new one past [`SEGMENT_BYTES`]; nothing else
//!   writes a segment while it is the head.
//! - `acked`: the highest sequence number up to which everything is delivered or dropped, in two
//!   checksummed slots written alternately, so a torn write leaves the other one.
//!
//! The worker reads payloads back, deletes segments with nothing waiting, and rewrites a segment
//! that is mostly dead (write a copy, fsync, rename). At start, [`load`] reads every segment,
//! drops what is torn or spoiled (counted, named in the log) and rebuilds the index.
//!
//! Durability: with `ALERT_STORE_FSYNC=always` the reactor calls `fdatasync` once per turn that
//! accepted alerts, before it saves a read position past them: an accepted alert survives a
//! power cut. (The worker is woken before that sync: it reads the records from the page cache,
//! so delivery does not wait for the disk.) With
//! `never`, a `kill -9` still loses nothing (the page cache survives the process) but a power cut
//! loses what the kernel had not yet written back (`vm.dirty_expire_centisecs`, 30 s by default).
//! The `acked` file is never synced: losing it re-sends alerts, it cannot lose one.
//!
//! A full or read-only disk: a record that cannot be written is held in memory (counted; the
//! uplink writes it out as soon as the disk takes it again, in sequence order), and a failed
//! write is cut back off the segment, so nothing torn or empty is left behind.
//!
//! Privacy: alerts quote log lines that may come from root-only logs. The directory is created
//! 0700 and every file 0600 whatever the umask; modes found wider at start are narrowed (logged).

use crate::time::Wall;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::index::{BatchItem, Index, Location, Meta};
use super::record;
use crate::state::{FILE_MODE, make_private, private_dir};

/// Size past which the head segment is closed and a new one started.
pub const SEGMENT_BYTES: u64 = 64 * 1024;
/// Segments smaller than this are not worth rewriting.
pub const COMPACT_MIN_BYTES: u64 = 16 * 1024;
const ACK_FILE: &str = "acked";

pub use crate::config::settings::Fsync;

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Options that create a file readable by its owner only.
pub(crate) fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// The key (alert name and subject) and label of an alert, from its fields.
pub fn key_and_label(name: &str, level: &str, subject: &str) -> (u64, Box<str>) {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    subject.hash(&mut h);
    (h.finish(), format!("{level} {name:?} ({subject})").into())
}

/// The reactor's end: appends records to the head segment.
#[derive(Debug)]
pub struct SpoolWriter {
    dir: PathBuf,
    /// The directory exists (created private).
    dir_ready: bool,
    head: Option<File>,
    head_id: u64,
    head_size: u64,
    next_seq: u64,
    fsync: Fsync,
    unsynced: bool,
    /// A failed write could not be cut back off the head: the next write starts a new segment.
    broken: bool,
    /// The last failure, said once, until a write works again.
    said: Option<String>,
}

impl SpoolWriter {
    /// Sets the fsync policy (config.sh changed).
    pub fn set_fsync(&mut self, fsync: Fsync) {
        self.fsync = fsync;
    }

    /// The segment being appended to.
    pub fn head_id(&self) -> u64 {
        self.head_id
    }

    /// Why the spool cannot be written, while it cannot.
    pub fn problem(&self) -> Option<&str> {
        self.said.as_deref()
    }

    /// Writes a record for `payload`; returns its index entry (in memory only, counted by the
    /// caller, if the disk refused it) and the bytes the head segment grew by.
    pub fn append(&mut self, payload: &[u8], key: u64, label: Box<str>, now: Wall) -> (Meta, Result<u64, String>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let meta = |loc, bytes| Meta { seq, key, label, bytes, at: now, loc, superseded: false, in_flight: 0, pending: 0 };
        match self.write_record(seq, payload) {
            Ok((segment, offset, bytes)) => (meta(Location::Disk { segment, offset }, bytes), Ok(bytes)),
            Err(why) => (meta(Location::Memory(payload.into()), (record::HEADER + payload.len()) as u64), Err(why)),
        }
    }

    /// A record for `payload` kept in memory without trying the disk: records held before it
    /// must reach the disk first (segments are in sequence order).
    pub fn hold(&mut self, payload: &[u8], key: u64, label: Box<str>, now: Wall) -> Meta {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = (record::HEADER + payload.len()) as u64;
        Meta { seq, key, label, bytes, at: now, loc: Location::Memory(Arc::from(payload)), superseded: false, in_flight: 0, pending: 0 }
    }

    /// Writes record `seq` (appended or held earlier); returns `(segment, offset, bytes)`.
    pub fn write_record(&mut self, seq: u64, payload: &[u8]) -> Result<(u64, u64, u64), String> {
        let rec = record::encode(seq, payload);
        match self.write(&rec) {
            Ok(offset) => {
                if self.said.take().is_some() {
                    crate::info!("spool: writing to disk again");
                }
                Ok((self.head_id, offset, rec.len() as u64))
            }
            Err(e) => {
                let why = format!("cannot write the spool {}: {e}", self.dir.display());
                if self.said.as_deref() != Some(why.as_str()) {
                    crate::error!("{why}; alerts are kept in memory only until it works again");
                    self.said = Some(why.clone());
                }
                Err(why)
            }
        }
    }

    fn write(&mut self, rec: &[u8]) -> io::Result<u64> {
        if self.head.is_none() || self.broken || self.head_size >= SEGMENT_BYTES {
            self.roll()?;
        }
        let Some(f) = self.head.as_mut() else { return Err(io::Error::other("no head segment")) };
        let offset = self.head_size;
        if let Err(e) = f.write_all(rec) {
            // Give back what a partial write took (a full disk gets its space back) and keep
            // appending to this segment: no torn record, no empty segment per failure.
            if f.set_len(offset).is_err() {
                self.broken = true;
            }
            return Err(e);
        }
        self.head_size += rec.len() as u64;
        self.unsynced = true;
        Ok(offset)
    }

    fn roll(&mut self) -> io::Result<()> {
        if !self.dir_ready {
            if let Some(note) = private_dir(&self.dir)? {
                crate::warn!("spool: {note}");
            }
            self.dir_ready = true;
        }
        if self.broken && self.head_size == 0 && self.head.take().is_some() {
            // Nothing of ours in it: do not leave it behind.
            let _ = fs::remove_file(segment_path(&self.dir, self.head_id));
        }
        // A fresh id: never append after bytes a failed write may have left.
        let mut id = self.head_id + 1;
        let file = loop {
            match private_file().append(true).create_new(true).open(segment_path(&self.dir, id)) {
                Ok(f) => break f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => id += 1,
                Err(e) => return Err(e),
            }
        };
        if self.fsync == Fsync::Always {
            let synced = match self.head.as_ref().filter(|_| self.unsynced) {
                Some(f) => f.sync_data(),
                None => Ok(()),
            };
            if let Err(e) = synced.and_then(|()| sync_dir(&self.dir)) {
                let _ = fs::remove_file(segment_path(&self.dir, id));
                return Err(e);
            }
        }
        self.head = Some(file);
        self.head_id = id;
        self.head_size = 0;
        self.broken = false;
        Ok(())
    }

    /// Forces what was appended to disk, if the policy says so. Called once per reactor turn
    /// that appended (group commit).
    pub fn sync(&mut self) -> Result<(), String> {
        if !self.unsynced || self.fsync == Fsync::Never {
            return Ok(());
        }
        self.unsynced = false;
        match self.head.as_ref() {
            Some(f) => f.sync_data().map_err(|e| format!("cannot sync the spool: {e}")),
            None => Ok(()),
        }
    }
}

/// The worker's end: reads payloads, records progress, deletes and rewrites old segments.
#[derive(Debug)]
pub struct SpoolReader {
    dir: PathBuf,
    open: Option<(u64, File)>,
    /// Ack files by name (`acked`, and one per destination when there are several), with the
    /// writes made to each (they alternate between two slots).
    acks: Vec<(String, File, u64)>,
}

impl SpoolReader {
    /// The payload of a batch item.
    pub fn read(&mut self, item: &BatchItem) -> Result<Vec<u8>, String> {
        let (segment, offset) = match &item.loc {
            Location::Memory(p) => return Ok(p.to_vec()),
            Location::Disk { segment, offset } => (*segment, *offset),
        };
        let dir = &self.dir;
        if self.open.as_ref().map(|(id, _)| *id) != Some(segment) {
            let f = File::open(segment_path(dir, segment)).map_err(|e| format!("{}: {e}", segment_path(dir, segment).display()))?;
            self.open = Some((segment, f));
        }
        let Some((_, f)) = self.open.as_ref() else { return Err("no segment".into()) };
        let mut buf = vec![0; usize::try_from(item.bytes).map_err(|_| "record too large".to_string())?];
        f.read_exact_at(&mut buf, offset).map_err(|e| format!("{} at {offset}: {e}", segment_path(dir, segment).display()))?;
        match record::payload_of(&buf, item.seq) {
            Some(p) => Ok(p.to_vec()),
            None => Err(format!("{} at {offset}: record {} does not check out", segment_path(dir, segment).display(), item.seq)),
        }
    }

    /// Records that everything up to `seq` is done (not synced: losing it only re-sends).
    pub fn write_ack(&mut self, seq: u64) -> Result<(), String> {
        self.write_ack_named(ACK_FILE, seq)
    }

    /// Records that destination `tag` has everything up to `seq` ([`dest_ack_file`]).
    pub fn write_dest_ack(&mut self, tag: &str, seq: u64) -> Result<(), String> {
        self.write_ack_named(&dest_ack_file(tag), seq)
    }

    fn write_ack_named(&mut self, name: &str, seq: u64) -> Result<(), String> {
        let path = self.dir.join(name);
        let i = match self.acks.iter().position(|(n, _, _)| n == name) {
            Some(i) => i,
            None => {
                let f = private_file().read(true).write(true).create(true).truncate(false).open(&path);
                self.acks.push((name.to_string(), f.map_err(|e| format!("{}: {e}", path.display()))?, 0));
                self.acks.len() - 1
            }
        };
        let (_, f, writes) = &mut self.acks[i];
        let at = (*writes % 2) * 16;
        *writes += 1;
        f.write_all_at(&ack_slot(seq), at).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Deletes a segment with nothing waiting in it.
    pub fn delete(&mut self, segment: u64) -> Result<(), String> {
        if self.open.as_ref().is_some_and(|(id, _)| *id == segment) {
            self.open = None;
        }
        match fs::remove_file(segment_path(&self.dir, segment)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", segment_path(&self.dir, segment).display())),
        }
    }

    /// Rewrites `segment` with only `records` (`(seq, offset, bytes)`); returns their new offsets
    /// and the new file size. Records that do not check out are left behind (returned as
    /// missing from the moves; the caller drops them).
    pub fn compact(&mut self, segment: u64, records: &[(u64, u64, u64)]) -> Result<(Vec<(u64, u64)>, u64), String> {
        let dir = self.dir.clone();
        let path = segment_path(&dir, segment);
        let tmp = dir.join(format!("{segment:016x}.tmp"));
        let err = |e: io::Error| format!("rewriting {}: {e}", path.display());
        let src = File::open(&path).map_err(err)?;
        let copied = (|| {
            let mut out = private_file().write(true).create(true).truncate(true).open(&tmp)?;
            // A temporary file an older run left keeps its mode through open.
            out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(FILE_MODE))?;
            let mut moves = Vec::new();
            let mut size = 0u64;
            for &(seq, offset, bytes) in records {
                let mut buf = vec![0; usize::try_from(bytes).unwrap_or(0)];
                if src.read_exact_at(&mut buf, offset).is_err() || record::payload_of(&buf, seq).is_none() {
                    continue;
                }
                out.write_all(&buf)?;
                moves.push((seq, size));
                size += bytes;
            }
            out.sync_all()?;
            fs::rename(&tmp, &path)?;
            Ok((moves, size))
        })();
        let (moves, size) = copied.map_err(|e| {
            let _ = fs::remove_file(&tmp); // a full disk gets its space back
            err(e)
        })?;
        sync_dir(&dir).map_err(err)?;
        if self.open.as_ref().is_some_and(|(id, _)| *id == segment) {
            self.open = None;
        }
        Ok((moves, size))
    }
}

fn ack_slot(seq: u64) -> [u8; 16] {
    let mut slot = [0u8; 16];
    slot[..8].copy_from_slice(&seq.to_le_bytes());
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&slot[..8]);
    slot[8..12].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// The file that holds destination `tag`'s cursor.
pub fn dest_ack_file(tag: &str) -> String {
    format!("{ACK_FILE}.{tag}")
}

/// Destination `tag`'s cursor from an earlier run, if its file is there.
pub fn read_dest_ack(dir: &Path, tag: &str) -> Option<u64> {
    fs::read(dir.join(dest_ack_file(tag))).ok().map(|b| read_ack(&b))
}

/// The highest valid slot of an `acked` file's bytes (0 if none).
fn read_ack(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(16)
        .take(2)
        .filter(|s| ack_slot(u64::from_le_bytes(s[..8].try_into().unwrap_or_default()))[..12] == s[..12])
        .map(|s| u64::from_le_bytes(s[..8].try_into().unwrap_or_default()))
        .max()
        .unwrap_or(0)
}

/// What [`load`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The reactor's end.
    pub writer: SpoolWriter,
    /// The worker's end.
    pub reader: SpoolReader,
    /// The index of what waits.
    pub index: Index,
    /// Problems found (to log as warnings).
    pub problems: Vec<String>,
    /// What was recovered (to log as information).
    pub notes: Vec<String>,
}

/// Opens the spool in `dir` (created if missing, private), reading back what a previous run
/// left. Never fails: without a usable directory alerts are kept in memory (and the directory is
/// tried again at the next alert), and that is said.
pub fn load(dir: &Path, fsync: Fsync, now: Wall) -> Loaded {
    let mut messages = Vec::new();
    let mut notes = Vec::new();
    let dir_ready = match private_dir(dir) {
        Ok(fixed) => {
            messages.extend(fixed.map(|f| format!("spool: {f}")));
            true
        }
        Err(e) => {
            messages.push(format!("cannot create the spool {}: {e}; alerts are kept in memory only", dir.display()));
            false
        }
    };
    let acked = fs::read(dir.join(ACK_FILE)).map(|b| read_ack(&b)).unwrap_or(0);
    let mut index = Index::new(acked);
    let ids = if dir_ready { list_segments(dir, &mut messages) } else { Vec::new() };
    let mut last_size = 0;
    for &id in &ids {
        last_size = read_segment(dir, id, &mut index, &mut messages, now);
    }
    // Appended again: counted once, when first accepted.
    index.counters.appended = 0;
    let mut writer = SpoolWriter {
        dir: dir.to_path_buf(),
        dir_ready,
        head: None,
        head_id: 0,
        head_size: 0,
        next_seq: index.next_seq(),
        fsync,
        unsynced: false,
        broken: false,
        said: None,
    };
    if let Some(&last) = ids.last() {
        writer.head_id = last;
        if last_size < SEGMENT_BYTES {
            if let Ok(f) = OpenOptions::new().append(true).open(segment_path(dir, last)) {
                writer.head = Some(f);
                writer.head_size = last_size;
            }
        }
    }
    index.set_head(writer.head_id);
    let mut reader = SpoolReader { dir: dir.to_path_buf(), open: None, acks: Vec::new() };
    for id in index.dead_segments() {
        match reader.delete(id) {
            Ok(()) => index.forget_segment(id),
            Err(e) => messages.push(format!("spool: {e}")),
        }
    }
    if !index.is_empty() {
        notes.push(format!("spool: {} alerts from before the restart wait for delivery", index.len()));
    }
    Loaded { writer, reader, index, problems: messages, notes }
}

/// The segment ids in `dir`, in order; removes what an interrupted rewrite left and makes
/// every file private (one message if any was not).
fn list_segments(dir: &Path, messages: &mut Vec<String>) -> Vec<u64> {
    let mut ids = Vec::new();
    let mut widened = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path()); // an interrupted rewrite; the original stands
            continue;
        }
        if let Some(id) = name.strip_suffix(".seg").and_then(|h| u64::from_str_radix(h, 16).ok()) {
            ids.push(id);
        }
        match make_private(&entry.path()) {
            Ok(true) => widened.push(name),
            Ok(false) => {}
            Err(e) => messages.push(format!("spool {}: cannot make it private: {e}", entry.path().display())),
        }
    }
    if !widened.is_empty() {
        messages.push(format!(
            "spool {}: {} files were readable by other users ({}); made them private (0600)",
            dir.display(),
            widened.len(),
            widened.join(", ")
        ));
    }
    ids.sort_unstable();
    ids
}

/// Reads segment `id` into the index (cutting a torn tail off); returns its size.
fn read_segment(dir: &Path, id: u64, index: &mut Index, messages: &mut Vec<String>, now: Wall) -> u64 {
    let path = segment_path(dir, id);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            messages.push(format!("spool {}: cannot read it: {e}; its alerts are lost", path.display()));
            return 0;
        }
    };
    let scan = record::scan(&buf);
    for &(offset, len) in &scan.skipped {
        index.counters.corrupt_bytes += len as u64;
        messages.push(format!("spool {}: skipped {len} spoiled bytes at offset {offset}", path.display()));
    }
    let mut size = buf.len() as u64;
    if let Some((offset, len)) = scan.torn_tail {
        index.counters.corrupt_bytes += len as u64;
        messages.push(format!("spool {}: dropped {len} bytes of a record torn by a crash at offset {offset}", path.display()));
        if let Err(e) = OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(offset as u64)) {
            messages.push(format!("spool {}: cannot cut the torn record off: {e}", path.display()));
        }
        size = offset as u64;
    }
    index.grow_segment(id, size);
    for r in &scan.records {
        if r.seq < index.next_seq() {
            continue; // delivered before the stop, or a duplicate
        }
        let payload = &buf[r.payload()];
        let Some((key, label, at)) = describe(payload) else {
            index.counters.read_errors += 1;
            messages.push(format!("spool {}: record {} is not an alert; dropped", path.display(), r.seq));
            continue;
        };
        index.insert(Meta {
            seq: r.seq,
            key,
            label,
            bytes: r.len as u64,
            at: at.unwrap_or(now),
            loc: Location::Disk { segment: id, offset: r.offset as u64 },
            superseded: false,
            in_flight: 0,
            pending: 0,
        });
    }
    size
}

/// Key, label and time of a stored alert's JSON.
fn describe(payload: &[u8]) -> Option<(u64, Box<str>, Option<Wall>)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let name = v.get("name")?.as_str()?;
    let level = v.get("level").and_then(|l| l.as_str()).unwrap_or("?");
    let subject = v.get("subject").and_then(|s| s.get("name")).and_then(|n| n.as_str()).unwrap_or("");
    let at = v
        .get("timestamp")
        .and_then(|t| t.as_str())
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .map(Wall::from_unix_ms);
    let (key, label) = key_and_label(name, level, subject);
    Some((key, label, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    fn tempdir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("lookout-spool-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        Dir(d)
    }

    fn alert(name: &str, level: &str) -> Vec<u8> {
        format!(r#"{{"name":"{name}","level":"{level}","timestamp":"2026-11-29T10:00:00.000Z","subject":{{"name":"s","type":"log","status":"x"}}}}"#)
            .into_bytes()
    }

    fn push(w: &mut SpoolWriter, ix: &mut Index, name: &str, level: &str) -> u64 {
        let payload = alert(name, level);
        let (key, label) = key_and_label(name, level, "s");
        let (meta, written) = w.append(&payload, key, label, Wall::default());
        ix.set_head(w.head_id());
        ix.grow_segment(w.head_id(), written.unwrap_or(0));
        let seq = meta.seq;
        ix.insert(meta);
        seq
    }

    fn read_all(r: &mut SpoolReader, ix: &mut Index) -> Vec<String> {
        let batch = ix.take_batch(0, usize::MAX, u64::MAX);
        ix.release(0);
        batch.iter().map(|b| String::from_utf8(r.read(b).unwrap()).unwrap()).collect()
    }

    #[test]
    fn what_was_appended_is_read_back_after_a_restart_and_acks_stick() {
        let d = tempdir("restart");
        let l = load(&d.0, Fsync::Always, Wall::default());
        assert!(l.problems.is_empty() && l.notes.is_empty(), "{:?}", l.problems);
        let (mut w, mut r, mut ix) = (l.writer, l.reader, l.index);
        for i in 0..5 {
            push(&mut w, &mut ix, &format!("a{i}"), "CRITICAL");
        }
        w.sync().unwrap();
        assert_eq!(read_all(&mut r, &mut ix).len(), 5);
        ix.complete(0, &[1, 2]);
        r.write_ack(ix.acked()).unwrap();
        drop((w, r, ix));

        let l = load(&d.0, Fsync::Always, Wall::default());
        assert_eq!(l.notes, vec!["spool: 3 alerts from before the restart wait for delivery".to_string()]);
        assert!(l.problems.is_empty());
        let (mut w, mut r, mut ix) = (l.writer, l.reader, l.index);
        let got = read_all(&mut r, &mut ix);
        assert!(got[0].contains("a2") && got[2].contains("a4"), "{got:?}");
        assert_eq!(push(&mut w, &mut ix, "b", "OK"), 6, "sequence numbers go on");
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_named() {
        let d = tempdir("torn");
        let l = load(&d.0, Fsync::Never, Wall::default());
        let (mut w, mut ix) = (l.writer, l.index);
        push(&mut w, &mut ix, "a", "CRITICAL");
        push(&mut w, &mut ix, "b", "CRITICAL");
        drop(w);
        let seg = segment_path(&d.0, 1);
        let len = fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 7).unwrap();
        let l = load(&d.0, Fsync::Never, Wall::default());
        assert!(l.problems[0].contains("0000000000000001.seg: dropped") && l.problems[0].contains("torn by a crash"), "{:?}", l.problems);
        assert_eq!(l.index.len(), 1);
        assert!(l.index.counters.corrupt_bytes > 0);
        let first = fs::metadata(&seg).unwrap().len();
        assert!(first < len - 7, "the torn record is cut off the file");
        // Appends go on after the last good record.
        let (mut w, mut r, mut ix) = (l.writer, l.reader, l.index);
        push(&mut w, &mut ix, "c", "OK");
        let got = read_all(&mut r, &mut ix);
        assert_eq!(got.len(), 2);
        assert!(got[1].contains(r#""name":"c""#));
    }

    #[test]
    fn a_bad_ack_slot_falls_back_to_the_other() {
        let mut bytes = ack_slot(7).to_vec();
        bytes.extend(ack_slot(9));
        assert_eq!(read_ack(&bytes), 9);
        bytes[16] ^= 1;
        assert_eq!(read_ack(&bytes), 7, "a torn newer slot leaves the older");
        assert_eq!(read_ack(b"junk"), 0);
    }

    #[test]
    fn dead_segments_go_and_sparse_ones_are_rewritten() {
        let d = tempdir("compact");
        let l = load(&d.0, Fsync::Never, Wall::default());
        let (mut w, mut r, mut ix) = (l.writer, l.reader, l.index);
        let big = "x".repeat(2000);
        let mut n = 0;
        while w.head_id() < 3 {
            n += 1;
            push(&mut w, &mut ix, &format!("{big}{n}"), "CRITICAL");
        }
        // Deliver all of segment 1 and most of segment 2.
        let first_of_2 = ix.records_in(2)[0].0;
        let seqs: Vec<u64> = (1..first_of_2 + 25).collect();
        ix.complete(0, &seqs);
        assert_eq!(ix.dead_segments(), vec![1]);
        r.delete(1).unwrap();
        ix.forget_segment(1);
        assert!(!segment_path(&d.0, 1).exists());
        let sparse = ix.sparse_segment(COMPACT_MIN_BYTES).unwrap();
        assert_eq!(sparse, 2);
        let before = fs::metadata(segment_path(&d.0, 2)).unwrap().len();
        let (moves, size) = r.compact(2, &ix.records_in(2)).unwrap();
        ix.relocate(2, &moves, size);
        assert!(size < before / 2 && size == fs::metadata(segment_path(&d.0, 2)).unwrap().len());
        let got = read_all(&mut r, &mut ix);
        assert_eq!(got.len(), ix.len());
        assert!(got[0].contains(&format!("{big}{}", first_of_2 + 25)), "order and content survive the rewrite");
    }

    #[test]
    fn without_a_directory_alerts_stay_in_memory() {
        let l = load(Path::new("/proc/lookout-cannot-create"), Fsync::Always, Wall::default());
        assert!(l.problems[0].contains("kept in memory only"), "{:?}", l.problems);
        let (mut w, mut r, mut ix) = (l.writer, l.reader, l.index);
        let (key, label) = key_and_label("a", "CRITICAL", "s");
        let (meta, written) = w.append(&alert("a", "CRITICAL"), key, label, Wall::default());
        assert!(written.is_err());
        assert!(matches!(meta.loc, Location::Memory(_)));
        ix.insert(meta);
        assert!(read_all(&mut r, &mut ix)[0].contains(r#""name":"a""#));
    }
}
