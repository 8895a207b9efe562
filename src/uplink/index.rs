//! The spool's index: which alerts wait for delivery, in order, where their bytes are, and which
//! go first when a bound is hit. Pure (no I/O, time passed in); the reactor adds to it and the
//! worker takes from it, each under the uplink's lock for a few microseconds.
//!
//! Bounds (`ALERT_OFFLINE_STORE_MAX_COUNT`, `ALERT_STORE_MAX_BYTES`, `ALERT_STORE_MAX_RECORD_AGE_S`)
//! drop superseded records first: a record is superseded when a newer one with the same alert
//! name and subject waits behind it, so the server's final state of every alert survives (an OK
//! is never lost because CRITICALs filled the store). The age bound drops only superseded
//! records: the latest state of an alert is the device's current state, never stale. Only when
//! nothing superseded is left does a count or byte bound drop a latest state, oldest first, and
//! that is logged as an error.
//!
//! Several destinations share the one spool: each record carries the set of destinations that
//! still wait for it (a bit each, at most [`MAX_DESTINATIONS`]) and the set that has it in
//! flight; a destination's cursor is its oldest waiting record. A record leaves the index (and
//! its bytes become dead) when every destination has it. Bounds apply to the spool as a whole:
//! a record dropped is dropped for every destination still waiting for it, and counted for each.
//! That is the same as a bound per destination: each destination takes records in order, so
//! what waits for it is a suffix of the sequence (less what it refused), the spool holds the
//! longest of these suffixes, and only the destination furthest behind can be over a bound.

use crate::time::Wall;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Where a record's payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// In a segment file: `(segment, offset of the record)`.
    Disk {
        /// Segment id.
        segment: u64,
        /// Offset of the record (header included) in the segment.
        offset: u64,
    },
    /// Only in memory: the spool could not be written (disk full, read-only); delivered if the
    /// agent lives long enough, counted as a write error.
    Memory(Arc<[u8]>),
}

/// One waiting alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Sequence number: the delivery order.
    pub seq: u64,
    /// Hash of the alert name and subject name: records with the same key supersede each other.
    pub key: u64,
    /// `CRITICAL "name" (subject)`, for the log when it is dropped.
    pub label: Box<str>,
    /// Bytes of the record (header and payload).
    pub bytes: u64,
    /// Wall-clock ms when it was accepted.
    pub at: Wall,
    /// Where its payload is.
    pub loc: Location,
    /// A newer record with the same key waits behind it.
    pub superseded: bool,
    /// The destinations that have it in the batch being sent (a bit each).
    pub in_flight: u8,
    /// The destinations still waiting for it (a bit each; set by [`Index::insert`]).
    pub pending: u8,
}

/// Most destinations one spool serves (a bit each in [`Meta::pending`]).
pub const MAX_DESTINATIONS: usize = 8;

fn bit(dest: usize) -> u8 {
    1u8.checked_shl(u32::try_from(dest).unwrap_or(u32::MAX)).unwrap_or(0)
}

/// The configured bounds (0 for `max_age_ms` means no age bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most records waiting (at least 1).
    pub max_count: u64,
    /// Most record bytes waiting.
    pub max_bytes: u64,
    /// Superseded records older than this are dropped.
    pub max_age_ms: u64,
}

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Superseded and older than the age bound.
    Age,
    /// Over the count bound.
    Count,
    /// Over the byte bound.
    Bytes,
}

/// A dropped record, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Its label.
    pub label: Box<str>,
    /// Why.
    pub reason: DropReason,
    /// Whether a newer state of the same alert waits (else the alert's last state is lost).
    pub superseded: bool,
}

/// Counters of the spool, shown by `status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolCounters {
    /// Records accepted.
    pub appended: u64,
    /// Records delivered.
    pub delivered: u64,
    /// Records the server refused for good (400 on the record alone), dropped.
    pub rejected: u64,
    /// Superseded records dropped by the age bound.
    pub dropped_age: u64,
    /// Superseded records dropped by the count or byte bound.
    pub dropped_superseded: u64,
    /// Latest states dropped by the count or byte bound (nothing superseded was left).
    pub dropped_latest: u64,
    /// Records that could not be written to disk (kept in memory only).
    pub write_errors: u64,
    /// Records that could not be read back (dropped).
    pub read_errors: u64,
    /// Bytes of spoiled or torn records skipped when the spool was loaded.
    pub corrupt_bytes: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Bytes in the file, dead records included.
    bytes: u64,
    /// Bytes of records still waiting.
    live_bytes: u64,
    /// Records still waiting.
    live: usize,
}

/// A record of the batch being sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// Its sequence number.
    pub seq: u64,
    /// Where its payload is.
    pub loc: Location,
    /// Record bytes.
    pub bytes: u64,
    /// Its label.
    pub label: Box<str>,
}

/// The index.
#[derive(Debug, Default)]
pub struct Index {
    live: VecDeque<Meta>,
    latest: HashMap<u64, u64>,
    live_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    head: u64,
    next_seq: u64,
    /// Waiting records whose payload is only in memory (`Location::Memory`).
    in_memory: usize,
    /// Every destination's bit.
    all: u8,
    /// Per destination: records delivered, refused, dropped by a bound while it waited.
    per_dest: [DestCounters; MAX_DESTINATIONS],
    /// Counters.
    pub counters: SpoolCounters,
}

/// One destination's counters, shown by `status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DestCounters {
    /// Records it received.
    pub delivered: u64,
    /// Records it refused for good (400 on the record alone).
    pub rejected: u64,
    /// Records dropped by a bound (or unreadable) while it still waited for them.
    pub dropped: u64,
}

impl Index {
    /// An empty index whose records start after `acked`.
    pub fn new(acked: u64) -> Index {
        Index { next_seq: acked.saturating_add(1), all: 1, ..Index::default() }
    }

    /// Serves `n` destinations (1 to [`MAX_DESTINATIONS`]); every record waiting now waits
    /// for each of them. Called once, before any delivery.
    pub fn set_destinations(&mut self, n: usize) {
        self.all = (1..n.clamp(1, MAX_DESTINATIONS)).fold(1, |m, d| m | bit(d));
        for m in self.live.iter_mut() {
            m.pending = self.all;
        }
    }

    /// Destination `dest` already has every record up to `seq` (its cursor from before a
    /// restart): they stop waiting for it, and leave when no destination waits.
    pub fn delivered_upto(&mut self, dest: usize, seq: u64) {
        let seqs: Vec<u64> = self.live.iter().take_while(|m| m.seq <= seq).map(|m| m.seq).collect();
        for s in seqs {
            self.clear(dest, s);
        }
    }

    /// Destination `dest`'s cursor: every record up to it is delivered to `dest` or dropped.
    pub fn acked_for(&self, dest: usize) -> u64 {
        self.live.iter().find(|m| m.pending & bit(dest) != 0).map(|m| m.seq).unwrap_or(self.next_seq).saturating_sub(1)
    }

    /// Records waiting for `dest`.
    pub fn waiting_for(&self, dest: usize) -> usize {
        self.live.iter().filter(|m| m.pending & bit(dest) != 0).count()
    }

    /// `dest`'s counters.
    pub fn dest_counters(&self, dest: usize) -> DestCounters {
        self.per_dest.get(dest).copied().unwrap_or_default()
    }

    /// Record `seq` no longer waits for `dest`; it leaves when none waits. Whether it left
    /// (`delivered` counts it when the last destination received it).
    fn clear(&mut self, dest: usize, seq: u64) -> bool {
        let Some(i) = self.position(seq) else { return false };
        let m = &mut self.live[i];
        m.pending &= !bit(dest);
        m.in_flight &= !bit(dest);
        if m.pending == 0 {
            self.remove_at(i);
            return true;
        }
        false
    }

    /// Counts a drop for every destination that waited for `m`.
    fn count_drop(&mut self, m: &Meta) {
        for (d, c) in self.per_dest.iter_mut().enumerate() {
            if m.pending & bit(d) != 0 {
                c.dropped += 1;
            }
        }
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Record bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.live_bytes
    }

    /// When the oldest waiting record was accepted.
    pub fn oldest(&self) -> Option<Wall> {
        self.live.front().map(|m| m.at)
    }

    /// Waiting records held only in memory (the spool could not be written): a crash loses
    /// them. Delivered ones no longer count.
    pub fn in_memory(&self) -> usize {
        self.in_memory
    }

    /// The waiting records held only in memory, oldest first: `(seq, payload)`.
    pub fn held(&self) -> Vec<(u64, Arc<[u8]>)> {
        if self.in_memory == 0 {
            return Vec::new();
        }
        self.live
            .iter()
            .filter_map(|m| match &m.loc {
                Location::Memory(p) => Some((m.seq, Arc::clone(p))),
                Location::Disk { .. } => None,
            })
            .collect()
    }

    /// A record held in memory was written to `segment` at `offset` (if it still waits).
    pub fn held_written(&mut self, seq: u64, segment: u64, offset: u64) {
        let Some(i) = self.position(seq) else { return };
        let m = &mut self.live[i];
        if !matches!(m.loc, Location::Memory(_)) {
            return;
        }
        m.loc = Location::Disk { segment, offset };
        let bytes = m.bytes;
        let s = self.segments.entry(segment).or_default();
        s.live += 1;
        s.live_bytes += bytes;
        self.in_memory = self.in_memory.saturating_sub(1);
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Every record up to this one is delivered or dropped: what the ack file says.
    pub fn acked(&self) -> u64 {
        self.live.front().map(|m| m.seq).unwrap_or(self.next_seq).saturating_sub(1)
    }

    /// The segment being appended to: never deleted or compacted.
    pub fn set_head(&mut self, segment: u64) {
        self.head = segment;
    }

    /// The segment being appended to.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Counts `bytes` more in `segment`'s file (a record appended, or dead bytes found at load).
    pub fn grow_segment(&mut self, segment: u64, bytes: u64) {
        self.segments.entry(segment).or_default().bytes += bytes;
    }

    /// Adds a record (its seq must be above every other's). An older record with the same key
    /// becomes superseded.
    pub fn insert(&mut self, mut meta: Meta) {
        meta.pending = self.all;
        if let Some(old) = self.latest.insert(meta.key, meta.seq) {
            if let Some(i) = self.position(old) {
                self.live[i].superseded = true;
            }
        }
        match meta.loc {
            Location::Disk { segment, .. } => {
                let s = self.segments.entry(segment).or_default();
                s.live += 1;
                s.live_bytes += meta.bytes;
            }
            Location::Memory(_) => self.in_memory += 1,
        }
        self.next_seq = self.next_seq.max(meta.seq.saturating_add(1));
        self.live_bytes += meta.bytes;
        self.counters.appended += 1;
        self.live.push_back(meta);
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.live.binary_search_by_key(&seq, |m| m.seq).ok()
    }

    fn remove_at(&mut self, i: usize) -> Option<Meta> {
        let m = self.live.remove(i)?;
        if self.latest.get(&m.key) == Some(&m.seq) {
            self.latest.remove(&m.key);
        }
        match m.loc {
            Location::Disk { segment, .. } => {
                if let Some(s) = self.segments.get_mut(&segment) {
                    s.live = s.live.saturating_sub(1);
                    s.live_bytes = s.live_bytes.saturating_sub(m.bytes);
                }
            }
            Location::Memory(_) => self.in_memory = self.in_memory.saturating_sub(1),
        }
        self.live_bytes = self.live_bytes.saturating_sub(m.bytes);
        Some(m)
    }

    /// Applies the bounds at `now`; returns what was dropped.
    pub fn enforce(&mut self, now: Wall, bounds: Bounds) -> Vec<Dropped> {
        let mut dropped = Vec::new();
        if bounds.max_age_ms > 0 {
            let mut i = 0;
            while i < self.live.len() {
                let m = &self.live[i];
                if m.superseded && m.in_flight == 0 && now.since(m.at) > bounds.max_age_ms {
                    if let Some(m) = self.remove_at(i) {
                        self.count_drop(&m);
                        self.counters.dropped_age += 1;
                        dropped.push(Dropped { label: m.label, reason: DropReason::Age, superseded: true });
                    }
                } else {
                    i += 1;
                }
            }
        }
        let max_count = usize::try_from(bounds.max_count.max(1)).unwrap_or(usize::MAX);
        loop {
            let reason = if self.live.len() > max_count {
                DropReason::Count
            } else if self.live_bytes > bounds.max_bytes {
                DropReason::Bytes
            } else {
                break;
            };
            // The newest record is never the victim: it was just accepted.
            let candidates = self.live.len().saturating_sub(1);
            let victim = (0..candidates)
                .find(|&i| self.live[i].superseded && self.live[i].in_flight == 0)
                .or_else(|| (0..candidates).find(|&i| self.live[i].in_flight == 0));
            let Some(m) = victim.and_then(|i| self.remove_at(i)) else { break };
            self.count_drop(&m);
            if m.superseded {
                self.counters.dropped_superseded += 1;
            } else {
                self.counters.dropped_latest += 1;
            }
            dropped.push(Dropped { label: m.label, reason, superseded: m.superseded });
        }
        dropped
    }

    /// The next batch for `dest`: the oldest records waiting for it, at most `max_count` and
    /// `max_bytes` (but at least one), marked in flight for it.
    pub fn take_batch(&mut self, dest: usize, max_count: usize, max_bytes: u64) -> Vec<BatchItem> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for m in self.live.iter_mut().filter(|m| m.pending & bit(dest) != 0 && m.in_flight & bit(dest) == 0) {
            if out.len() >= max_count || (!out.is_empty() && bytes + m.bytes > max_bytes) {
                break;
            }
            m.in_flight |= bit(dest);
            bytes += m.bytes;
            out.push(BatchItem { seq: m.seq, loc: m.loc.clone(), bytes: m.bytes, label: m.label.clone() });
        }
        out
    }

    /// `dest`'s batch was not delivered: its records wait again.
    pub fn release(&mut self, dest: usize) {
        for m in self.live.iter_mut() {
            m.in_flight &= !bit(dest);
        }
    }

    /// These records were delivered to `dest`.
    pub fn complete(&mut self, dest: usize, seqs: &[u64]) {
        for &s in seqs {
            if self.position(s).is_some() {
                if let Some(c) = self.per_dest.get_mut(dest) {
                    c.delivered += 1;
                }
                if self.clear(dest, s) {
                    self.counters.delivered += 1;
                }
            }
        }
        self.release(dest);
    }

    /// `dest` refused this record for good: it no longer waits for `dest` (the others still
    /// get it).
    pub fn refuse(&mut self, dest: usize, seq: u64) {
        if self.position(seq).is_some() {
            self.counters.rejected += 1;
            if let Some(c) = self.per_dest.get_mut(dest) {
                c.rejected += 1;
            }
            self.clear(dest, seq);
        }
    }

    /// The record could not be read: it is dropped for every destination.
    pub fn discard(&mut self, seq: u64) -> Option<Box<str>> {
        let i = self.position(seq)?;
        let m = self.remove_at(i)?;
        self.count_drop(&m);
        Some(m.label)
    }

    /// Whether some record of `segment` is in a batch being sent (it is not rewritten then).
    pub fn in_flight_in(&self, segment: u64) -> bool {
        self.live.iter().any(|m| m.in_flight != 0 && matches!(m.loc, Location::Disk { segment: s, .. } if s == segment))
    }

    /// Where record `seq`'s payload is now (a rewrite may have moved it since its batch was
    /// taken), if it still waits.
    pub fn location(&self, seq: u64) -> Option<Location> {
        self.position(seq).map(|i| self.live[i].loc.clone())
    }

    /// Segments that hold no waiting record (and are not the head): to delete.
    pub fn dead_segments(&self) -> Vec<u64> {
        self.segments.iter().filter(|(id, s)| **id != self.head && s.live == 0).map(|(id, _)| *id).collect()
    }

    /// A segment worth rewriting: not the head, at least `min_bytes`, at most half of it alive,
    /// none of it in a batch being sent.
    pub fn sparse_segment(&self, min_bytes: u64) -> Option<u64> {
        self.segments
            .iter()
            .find(|(id, s)| {
                **id != self.head && s.live > 0 && s.bytes >= min_bytes && s.live_bytes * 2 <= s.bytes && !self.in_flight_in(**id)
            })
            .map(|(id, _)| *id)
    }

    /// The waiting records of `segment`: `(seq, offset, bytes)`.
    pub fn records_in(&self, segment: u64) -> Vec<(u64, u64, u64)> {
        self.live
            .iter()
            .filter_map(|m| match m.loc {
                Location::Disk { segment: s, offset } if s == segment => Some((m.seq, offset, m.bytes)),
                _ => None,
            })
            .collect()
    }

    /// `segment` was rewritten: records moved to new offsets, the file is `bytes` long.
    pub fn relocate(&mut self, segment: u64, moved: &[(u64, u64)], bytes: u64) {
        for &(seq, offset) in moved {
            if let Some(i) = self.position(seq) {
                self.live[i].loc = Location::Disk { segment, offset };
            }
        }
        if let Some(s) = self.segments.get_mut(&segment) {
            s.bytes = bytes;
        }
    }

    /// `segment`'s file was deleted.
    pub fn forget_segment(&mut self, segment: u64) {
        self.segments.remove(&segment);
    }

    /// Segments known: `(id, file bytes)`.
    pub fn segment_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64, key: u64, at_ms: u64) -> Meta {
        let at = Wall::from_unix_ms(at_ms);
        Meta {
            seq,
            key,
            label: format!("#{seq} key {key}").into(),
            bytes: 100,
            at,
            loc: Location::Disk { segment: seq / 10, offset: (seq % 10) * 100 },
            superseded: false,
            in_flight: 0,
            pending: 0,
        }
    }

    fn seqs(ix: &Index) -> Vec<u64> {
        ix.live.iter().map(|m| m.seq).collect()
    }

    const LOOSE: Bounds = Bounds { max_count: 1000, max_bytes: 1 << 30, max_age_ms: 0 };

    #[test]
    fn the_last_state_of_every_alert_survives_a_flood() {
        let mut ix = Index::new(0);
        // Alert A: CRITICAL then OK; then alert B floods.
        ix.insert(meta(1, 0xA, 0));
        ix.insert(meta(2, 0xA, 0));
        let bounds = Bounds { max_count: 5, ..LOOSE };
        let mut dropped = Vec::new();
        for seq in 3..100 {
            ix.insert(meta(seq, 0xB, 0));
            dropped.extend(ix.enforce(Wall::from_unix_ms(0), bounds));
        }
        let left = seqs(&ix);
        assert_eq!(left.len(), 5);
        assert!(left.contains(&2), "A's last state (its OK) is kept: {left:?}");
        assert!(!left.contains(&1), "A's superseded CRITICAL went first");
        assert_eq!(left.last(), Some(&99), "B's latest is kept");
        assert!(dropped.iter().all(|d| d.superseded && d.reason == DropReason::Count));
        assert_eq!(ix.counters.dropped_superseded, 94);
        assert_eq!(ix.counters.dropped_latest, 0);
    }

    #[test]
    fn without_anything_superseded_the_oldest_goes_and_is_counted_as_a_lost_state() {
        let mut ix = Index::new(0);
        for seq in 1..=4 {
            ix.insert(meta(seq, seq, 0));
        }
        let d = ix.enforce(Wall::from_unix_ms(0), Bounds { max_count: 3, ..LOOSE });
        assert_eq!(d.len(), 1);
        assert!(!d[0].superseded);
        assert_eq!(seqs(&ix), vec![2, 3, 4]);
        assert_eq!(ix.counters.dropped_latest, 1);
    }

    #[test]
    fn the_byte_bound_and_the_age_bound() {
        let mut ix = Index::new(0);
        for seq in 1..=6 {
            ix.insert(meta(seq, seq % 2, seq * 1000));
        }
        // Age: only superseded records older than 2.5 s at t=6 s: seqs 1, 2, 3 (4 is 2 s old).
        let d = ix.enforce(Wall::from_unix_ms(6000), Bounds { max_age_ms: 2500, ..LOOSE });
        assert_eq!(d.iter().map(|d| d.reason).collect::<Vec<_>>(), vec![DropReason::Age; 3]);
        assert_eq!(seqs(&ix), vec![4, 5, 6]);
        // A latest state is never too old.
        assert!(ix.enforce(Wall::from_unix_ms(1_000_000), Bounds { max_age_ms: 1, ..LOOSE }).len() == 1, "only 4 (superseded by 6) goes");
        assert_eq!(seqs(&ix), vec![5, 6]);
        let d = ix.enforce(Wall::from_unix_ms(0), Bounds { max_bytes: 150, ..LOOSE });
        assert_eq!((d.len(), d[0].reason), (1, DropReason::Bytes));
        assert_eq!(seqs(&ix), vec![6], "the newest stays even over the bound");
        assert_eq!(ix.bytes(), 100);
    }

    #[test]
    fn batches_acks_and_segments() {
        let mut ix = Index::new(41);
        for seq in 42..=55 {
            ix.insert(meta(seq, seq, 0));
        }
        ix.set_head(5);
        assert_eq!(ix.acked(), 41);
        let b = ix.take_batch(0, 10, 350);
        assert_eq!(b.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![42, 43, 44], "bytes bound the batch");
        // In flight: not a victim of the bounds.
        ix.enforce(Wall::from_unix_ms(0), Bounds { max_count: 1, ..LOOSE });
        assert_eq!(seqs(&ix), vec![42, 43, 44, 55]);
        ix.complete(0, &[42, 43]);
        assert_eq!(ix.discard(44).as_deref(), Some("#44 key 44"));
        assert_eq!(ix.acked(), 54);
        assert_eq!(ix.dead_segments(), vec![4], "segment 4 holds nothing now; 5 is the head");
        ix.complete(0, &[55]);
        assert_eq!(ix.acked(), 55);
        assert!(ix.is_empty());
        assert!(ix.take_batch(0, 10, 1).is_empty());
    }

    #[test]
    fn records_held_in_memory_are_counted_until_written_or_gone() {
        let mut ix = Index::new(0);
        ix.insert(meta(1, 1, 0));
        for seq in 2..=4 {
            ix.insert(Meta { loc: Location::Memory(Arc::from(&b"p"[..])), ..meta(seq, seq, 0) });
        }
        assert_eq!(ix.in_memory(), 3);
        assert_eq!(ix.held().iter().map(|h| h.0).collect::<Vec<_>>(), vec![2, 3, 4]);
        ix.complete(0, &[2]);
        assert_eq!(ix.in_memory(), 2, "a delivered one no longer counts");
        ix.held_written(3, 7, 0);
        ix.held_written(3, 7, 0);
        ix.held_written(99, 7, 0);
        assert_eq!((ix.in_memory(), ix.records_in(7)), (1, vec![(3, 0, 100)]), "written once, unknown ones ignored");
        assert_eq!(ix.discard(4).as_deref(), Some("#4 key 4"));
        assert_eq!(ix.in_memory(), 0);
        assert!(ix.held().is_empty());
    }

    #[test]
    fn each_destination_has_its_own_cursor_and_a_record_leaves_when_all_have_it() {
        let mut ix = Index::new(0);
        ix.insert(meta(1, 1, 0));
        ix.set_destinations(2);
        for seq in 2..=4 {
            ix.insert(meta(seq, seq, 0));
        }
        // Destination 0 is up: it takes everything; destination 1 is down.
        let b = ix.take_batch(0, 10, u64::MAX);
        assert_eq!(b.len(), 4);
        ix.complete(0, &[1, 2, 3, 4]);
        assert_eq!((ix.waiting_for(0), ix.waiting_for(1), ix.len()), (0, 4, 4), "kept for destination 1");
        assert_eq!((ix.acked_for(0), ix.acked_for(1), ix.acked()), (4, 0, 0));
        let b = ix.take_batch(1, 2, u64::MAX);
        assert_eq!(b.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![1, 2], "in order, from its own cursor");
        ix.release(1);
        ix.refuse(1, 1);
        ix.complete(1, &[2]);
        assert_eq!((ix.acked_for(1), ix.acked(), ix.counters.delivered, ix.counters.rejected), (2, 2, 1, 1));
        assert_eq!(ix.dest_counters(1), DestCounters { delivered: 1, rejected: 1, dropped: 0 });
        // A cursor from before a restart.
        ix.delivered_upto(1, 3);
        assert_eq!((ix.len(), ix.acked()), (1, 3));
        // A bound drops for every destination that waited.
        ix.insert(meta(5, 5, 0));
        ix.enforce(Wall::from_unix_ms(0), Bounds { max_count: 1, ..LOOSE });
        assert_eq!((seqs(&ix), ix.dest_counters(1).dropped, ix.dest_counters(0).dropped), (vec![5], 1, 0));
    }

    #[test]
    fn sparse_segments_are_found_and_relocated() {
        let mut ix = Index::new(0);
        for seq in 1..=9 {
            ix.insert(meta(seq, seq, 0));
            ix.grow_segment(0, 100);
        }
        ix.set_head(1);
        assert_eq!(ix.sparse_segment(0), None);
        ix.complete(0, &[1, 2, 3, 4, 5]);
        assert_eq!(ix.sparse_segment(0), Some(0));
        assert_eq!(ix.sparse_segment(10_000), None, "too small to bother");
        assert_eq!(ix.records_in(0), vec![(6, 600, 100), (7, 700, 100), (8, 800, 100), (9, 900, 100)]);
        ix.relocate(0, &[(6, 0), (7, 100), (8, 200), (9, 300)], 400);
        assert_eq!(ix.records_in(0)[0], (6, 0, 100));
        assert_eq!(ix.sparse_segment(0), None);
        assert_eq!(ix.segment_bytes(), 400);
    }
}
