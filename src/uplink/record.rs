//! The spool's record on disk, and how a segment file is read back after a crash.
//!
//! ```text
//! 0   magic  "LKA1"
//! 4   len    u32 LE   payload bytes
//! 8   seq    u64 LE   the alert's sequence number (increasing across the spool's life)
//! 16  crc    u32 LE   CRC-32C of bytes 4..16 and the payload
//! 20  payload         the alert's JSON, as it is sent
//! ```
//!
//! A power cut can leave the last record half written; a bad sector can spoil one in the middle.
//! [`scan`] never fails: it returns the records whose CRC holds, and the byte ranges it had to
//! skip, finding the next record after a spoiled one by its magic.

/// First bytes of every record.
pub const MAGIC: [u8; 4] = *b"LKA1";
/// Bytes before the payload.
pub const HEADER: usize = 20;
/// Largest payload a record may declare; a bigger length is corruption. An alert is at most
/// 1 + 2 × 1000 context lines of `LOG_MAX_LINE_BYTES`, escaped; 64 MiB is far beyond that.
pub const MAX_PAYLOAD: usize = 64 << 20;

fn checksum(len_and_seq: &[u8], payload: &[u8]) -> u32 {
    crate::crc32c::crc32c(&[len_and_seq, payload])
}

/// The bytes of one record.
pub fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    // Payloads are far below 4 GiB (MAX_PAYLOAD); the cast cannot truncate what is checked.
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let crc = checksum(&out[4..16], payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// One record found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Where the record starts.
    pub offset: usize,
    /// Its sequence number.
    pub seq: u64,
    /// Header and payload bytes.
    pub len: usize,
}

impl Found {
    /// Where the payload is in the buffer the record was found in.
    pub fn payload(&self) -> std::ops::Range<usize> {
        self.offset + HEADER..self.offset + self.len
    }
}

/// Reads the record at the start of `buf`: `Some` if it is whole and its CRC holds.
pub fn parse(buf: &[u8]) -> Option<(u64, usize)> {
    if buf.len() < HEADER || buf[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
    if len > MAX_PAYLOAD || buf.len() - HEADER < len {
        return None;
    }
    let seq = u64::from_le_bytes(buf[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(buf[16..20].try_into().ok()?);
    (checksum(&buf[4..16], &buf[HEADER..HEADER + len]) == crc).then_some((seq, HEADER + len))
}

/// The payload of a record read on its own (the bytes of exactly one record), if it is intact
/// and carries `seq`.
pub fn payload_of(bytes: &[u8], seq: u64) -> Option<&[u8]> {
    match parse(bytes) {
        Some((s, len)) if s == seq && len == bytes.len() => Some(&bytes[HEADER..]),
        _ => None,
    }
}

/// What a segment file holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Intact records, in file order.
    pub records: Vec<Found>,
    /// Spoiled ranges followed by intact records: `(offset, bytes)`.
    pub skipped: Vec<(usize, usize)>,
    /// Bytes at the end that hold no intact record (a record torn by a crash): `(offset, bytes)`.
    pub torn_tail: Option<(usize, usize)>,
}

/// Finds every intact record in `buf`, skipping what is spoiled.
pub fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0;
    while pos < buf.len() {
        if let Some((seq, len)) = parse(&buf[pos..]) {
            out.records.push(Found { offset: pos, seq, len });
            pos += len;
            continue;
        }
        // Resynchronise on the next magic that starts an intact record.
        let next = memchr::memmem::find_iter(&buf[pos + 1..], &MAGIC).map(|i| pos + 1 + i).find(|&p| parse(&buf[p..]).is_some());
        match next {
            Some(p) => {
                out.skipped.push((pos, p - pos));
                pos = p;
            }
            None => {
                out.torn_tail = Some((pos, buf.len() - pos));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Vec<u8> {
        let mut b = encode(7, br#"{"name":"a"}"#);
        b.extend(encode(8, br#"{"name":"b"}"#));
        b
    }

    #[test]
    fn records_round_trip() {
        let b = two();
        let s = scan(&b);
        assert_eq!(s.records.len(), 2);
        assert_eq!((s.records[0].seq, s.records[1].seq), (7, 8));
        assert_eq!(&b[s.records[1].payload()], br#"{"name":"b"}"#);
        assert_eq!(s.skipped, vec![]);
        assert_eq!(s.torn_tail, None);
        let one = &b[s.records[0].offset..s.records[0].offset + s.records[0].len];
        assert_eq!(payload_of(one, 7), Some(&br#"{"name":"a"}"#[..]));
        assert_eq!(payload_of(one, 8), None, "a record read for another seq is not it");
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_every_cut() {
        let b = two();
        let first = encode(7, br#"{"name":"a"}"#).len();
        for cut in first + 1..b.len() {
            let s = scan(&b[..cut]);
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.torn_tail, Some((first, cut - first)), "cut at {cut}");
        }
    }

    #[test]
    fn a_spoiled_record_in_the_middle_is_skipped_and_the_next_found() {
        let mut b = two();
        b.extend(encode(9, b"{}"));
        let first = encode(7, br#"{"name":"a"}"#).len();
        for i in first..first + 20 + 12 {
            let mut c = b.clone();
            c[i] ^= 0x40;
            let s = scan(&c);
            let seqs: Vec<u64> = s.records.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, vec![7, 9], "byte {i} flipped");
            assert_eq!(s.skipped.len(), 1, "byte {i} flipped");
            assert_eq!(s.skipped[0].0, first);
        }
    }

    #[test]
    fn garbage_and_huge_lengths_never_panic() {
        let mut g = b"LKA1\xff\xff\xff\xff".to_vec();
        g.extend(two());
        let s = scan(&g);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.skipped, vec![(0, 8)]);
        assert_eq!(scan(b"").records.len(), 0);
        assert_eq!(scan(b"LKA").torn_tail, Some((0, 3)));
        assert_eq!(parse(&[0; 19]), None);
    }
}
