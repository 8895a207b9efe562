//! Turning a byte stream into lines: shared by the file tailer, the command runner and
//! `test-pattern`.
//!
//! The assembler owns everything about lines: it keeps the unterminated tail of what it read
//! until its newline arrives, counts lines, applies the length bound, and keeps the offset and
//! the fingerprint of the bytes just before it. A [`LineSink`] only receives: complete lines in
//! large buffers (one call per read, not per line) with their count.
//!
//! A line that does not fit the read buffer (`max_line + READ_CHUNK` bytes) is cut: its first
//! `max_line` bytes are handed on as one line and the rest up to the newline is skipped, counted.
//! Which lines are cut depends only on their length, never on how reads fell; lines between
//! `max_line` and the buffer size are handed on whole (the detector cuts them to `max_line` in
//! alerts). The bound may change between two pumps (a reload): an unfinished line that no longer
//! fits is cut by the same rule. Reads go through a closure, so the same code serves `pread` on a
//! file and `read` on a non-blocking pipe, and never exceeds the caller's byte budget.

use std::io;

/// Bytes read per call beyond the length bound (the read buffer is `max_line + READ_CHUNK`;
/// 128 KiB measured best of 64-512 KiB, BENCHMARKS.md).
pub const READ_CHUNK: usize = 128 * 1024;
/// Length of the fingerprint kept of the last bytes consumed.
pub const FINGERPRINT: usize = 64;

/// Receives what an assembler reads. It decides nothing about lines: numbering, counting and
/// cutting are the assembler's.
pub trait LineSink {
    /// `count` complete lines (`buf` ends with `\n`); the first is number `first_line`.
    fn lines(&mut self, buf: &[u8], first_line: u64, count: u64);
    /// One line without a newline: a line cut at the length bound, or the unterminated end of a
    /// stream that will not be read again.
    fn line(&mut self, line: &[u8], number: u64);
}

/// The shared read buffer: `max_line + READ_CHUNK` bytes, reused by every source (the reactor
/// is single-threaded, so one buffer serves every check).
#[derive(Debug)]
pub struct Scratch {
    buf: Box<[u8]>,
    max_line: usize,
}

impl Scratch {
    /// A buffer for lines of up to `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Scratch { buf: vec![0; max_line + READ_CHUNK].into_boxed_slice(), max_line }
    }

    /// Resizes for a new length bound. Assemblers holding an unfinished line apply the new
    /// bound to it at their next pump.
    pub fn set_max_line(&mut self, max_line: usize) {
        if max_line != self.max_line {
            *self = Scratch::new(max_line);
        }
    }

    /// The length bound.
    pub fn max_line(&self) -> usize {
        self.max_line
    }
}

/// Counters of what was read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCounters {
    /// Bytes read.
    pub bytes: u64,
    /// Lines longer than the bound (cut).
    pub long_lines: u64,
}

/// Why a pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The reader returned 0: end of file, or a pipe whose writers are gone.
    Eof,
    /// A non-blocking reader has nothing more for now.
    WouldBlock,
    /// The byte budget is spent; there may be more.
    Budget,
}

/// The line state of one stream.
///
/// Invariants: `partial` holds the bytes at `offset..` that were read and do not end in a
/// newline (never while `discarding`); `last` is the up to [`FINGERPRINT`] bytes of the stream
/// just before `offset`; `line` is the number of the line starting at `offset` (or, while
/// `discarding`, of the line after the one being skipped).
#[derive(Debug, Default)]
pub struct LineAssembler {
    /// Stream offset of the first byte not yet handed on (nor skipped).
    offset: u64,
    /// Number of the line that starts at `offset`.
    line: u64,
    /// Bytes at `offset..` already read that do not end in a newline yet.
    partial: Vec<u8>,
    /// Inside a line longer than the bound: skipping to its newline.
    discarding: bool,
    /// The last bytes consumed (handed on or skipped), ending at `offset`.
    last: Vec<u8>,
}

impl LineAssembler {
    /// An assembler whose next line starts at `offset` and is number `line`.
    pub fn new(offset: u64, line: u64) -> Self {
        LineAssembler { offset, line, ..Default::default() }
    }

    /// Offset of the next byte to consume: the next line's start, or inside a line being
    /// skipped.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of the next line.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Bytes read past `offset` (an unterminated line).
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Those bytes.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.partial
    }

    /// The last bytes consumed, ending at `offset`.
    pub fn last(&self) -> &[u8] {
        &self.last
    }

    /// Sets the bytes consumed last (read back from the file when resuming at a saved
    /// position), so that the fingerprint is there before the first new line.
    pub fn seed_last(&mut self, bytes: &[u8]) {
        self.last.clear();
        self.last.extend_from_slice(&bytes[bytes.len().saturating_sub(FINGERPRINT)..]);
    }

    /// Starts over at `offset`/`line` (the stream was truncated); returns the unterminated bytes
    /// that were pending.
    pub fn restart_at(&mut self, offset: u64, line: u64) -> Vec<u8> {
        let partial = std::mem::take(&mut self.partial);
        *self = LineAssembler::new(offset, line);
        partial
    }

    /// Moves the offset past `bytes`, the next bytes of the stream, keeping the fingerprint.
    fn consume(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        if bytes.len() >= FINGERPRINT {
            self.last.clear();
            self.last.extend_from_slice(&bytes[bytes.len() - FINGERPRINT..]);
        } else {
            let keep = FINGERPRINT - bytes.len();
            let drop = self.last.len().saturating_sub(keep);
            self.last.drain(..drop);
            self.last.extend_from_slice(bytes);
        }
    }

    /// Cuts the line that fills `buf[..filled]`: its first `max_line` bytes go on as one line,
    /// the rest up to its newline is skipped.
    fn cut(&mut self, buf: &[u8], max_line: usize, counters: &mut ReadCounters, sink: &mut dyn LineSink) {
        counters.long_lines += 1;
        sink.line(&buf[..max_line.min(buf.len())], self.line);
        self.line += 1;
        self.consume(buf);
        self.discarding = true;
    }

    /// Reads with `read(buf, stream_position)` until end of stream, `WouldBlock`, or until
    /// `budget` is spent, handing complete lines to `sink`.
    pub fn pump(
        &mut self,
        scratch: &mut Scratch,
        budget: &mut usize,
        counters: &mut ReadCounters,
        sink: &mut dyn LineSink,
        read: &mut dyn FnMut(&mut [u8], u64) -> io::Result<usize>,
    ) -> io::Result<Pumped> {
        let max_line = scratch.max_line;
        let buf = &mut scratch.buf;
        let partial = std::mem::take(&mut self.partial);
        let mut filled = 0;
        if partial.len() >= buf.len() {
            // The bound shrank (a reload) under an unfinished line that no longer fits.
            self.cut(&partial, max_line, counters, sink);
        } else {
            buf[..partial.len()].copy_from_slice(&partial);
            filled = partial.len();
        }
        let result = loop {
            if *budget == 0 {
                break Ok(Pumped::Budget);
            }
            let want = (buf.len() - filled).min(*budget);
            let n = match read(&mut buf[filled..filled + want], self.offset + filled as u64) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(Pumped::WouldBlock),
                Err(e) => break Err(e),
            };
            if n == 0 {
                break Ok(Pumped::Eof);
            }
            *budget = budget.saturating_sub(n);
            counters.bytes += n as u64;
            let fresh = filled;
            filled += n;
            let mut start = 0;
            if self.discarding {
                match memchr::memchr(b'\n', &buf[fresh..filled]) {
                    None => {
                        self.consume(&buf[..filled]);
                        filled = 0;
                        continue;
                    }
                    Some(i) => {
                        start = fresh + i + 1;
                        self.discarding = false;
                    }
                }
            }
            let mut end = start;
            if let Some(i) = memchr::memrchr(b'\n', &buf[fresh.max(start)..filled]) {
                end = fresh.max(start) + i + 1;
                let count = bytecount::count(&buf[start..end], b'\n') as u64;
                sink.lines(&buf[start..end], self.line, count);
                self.line += count;
            }
            if end > 0 {
                self.consume(&buf[..end]);
                buf.copy_within(end..filled, 0);
                filled -= end;
            }
            if filled == buf.len() {
                // No newline in a full buffer: the line is longer than anything we keep whole.
                self.cut(&buf[..filled], max_line, counters, sink);
                filled = 0;
            }
        };
        self.partial = partial;
        self.partial.clear();
        self.partial.extend_from_slice(&buf[..filled]);
        result
    }

    /// Hands on an unterminated last line; called when the stream will not be read again.
    pub fn finish(&mut self, sink: &mut dyn LineSink) {
        let partial = std::mem::take(&mut self.partial);
        if !partial.is_empty() && !self.discarding {
            sink.line(&partial, self.line);
            self.line += 1;
            self.consume(&partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Vec<(u64, Vec<u8>)>);

    impl LineSink for Record {
        fn lines(&mut self, buf: &[u8], first_line: u64, count: u64) {
            let before = self.0.len();
            for (n, l) in buf.split_inclusive(|&b| b == b'\n').enumerate() {
                self.0.push((first_line + n as u64, l[..l.len() - 1].to_vec()));
            }
            assert_eq!((self.0.len() - before) as u64, count, "the count handed on is the buffer's");
        }
        fn line(&mut self, line: &[u8], number: u64) {
            self.0.push((number, line.to_vec()));
        }
    }

    /// Reads of at most `chunk` bytes from `input`, with a WouldBlock between reads.
    struct Feeder<'a> {
        input: &'a [u8],
        chunk: usize,
        blocked: bool,
    }

    impl Feeder<'_> {
        fn read(&mut self, buf: &mut [u8], at: u64) -> io::Result<usize> {
            self.blocked = !self.blocked;
            if !self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let at = at as usize;
            let n = self.chunk.min(buf.len()).min(self.input.len() - at);
            buf[..n].copy_from_slice(&self.input[at..at + n]);
            Ok(n)
        }
    }

    /// The fingerprint is always the bytes of the stream just before the offset.
    fn assert_fingerprint(asm: &LineAssembler, input: &[u8]) {
        let end = asm.offset() as usize;
        let want = &input[end.saturating_sub(FINGERPRINT)..end];
        assert_eq!(asm.last(), want, "fingerprint at offset {end}");
    }

    /// Feeds `input` in reads of at most `chunk` bytes and pumps of at most `budget` bytes.
    fn run_with(input: &[u8], chunk: usize, max_line: usize, budget: usize) -> Vec<(u64, Vec<u8>)> {
        let mut asm = LineAssembler::new(0, 1);
        let mut scratch = Scratch::new(max_line);
        let mut counters = ReadCounters::default();
        let mut out = Record::default();
        let mut feeder = Feeder { input, chunk, blocked: false };
        loop {
            let mut left = budget;
            let r = asm.pump(&mut scratch, &mut left, &mut counters, &mut out, &mut |b, at| feeder.read(b, at)).unwrap();
            assert_fingerprint(&asm, input);
            if r == Pumped::Eof {
                break;
            }
        }
        asm.finish(&mut out);
        assert_eq!(counters.bytes, input.len() as u64);
        assert_eq!(asm.offset(), input.len() as u64);
        out.0
    }

    fn run(input: &[u8], chunk: usize, max_line: usize) -> Vec<(u64, Vec<u8>)> {
        run_with(input, chunk, max_line, usize::MAX)
    }

    /// Every way of cutting the input into reads gives the same lines.
    #[test]
    fn chunking_does_not_change_the_lines() {
        let mut input = b"one\n\ntwo three\n".to_vec();
        input.extend(std::iter::repeat_n(b'y', 300));
        input.push(b'\n');
        input.extend(std::iter::repeat_n(b'x', 100 + READ_CHUNK + 7));
        input.extend_from_slice(b"\nafter long\nunterminated");
        let want = run(&input, input.len(), 100);
        assert_eq!(want.len(), 7);
        assert_eq!(want[3], (4, vec![b'y'; 300]), "fits the buffer: whole");
        assert_eq!(want[4], (5, vec![b'x'; 100]), "longer than the buffer: cut to the bound");
        assert_eq!(want[5], (6, b"after long".to_vec()));
        assert_eq!(want[6], (7, b"unterminated".to_vec()));
        for chunk in [1000, 4096, 65_536, 100 + READ_CHUNK - 1, READ_CHUNK + 101] {
            assert_eq!(run(&input, chunk, 100), want, "reads of {chunk} bytes");
        }
        let small = b"a\nbc\n\ndef\ng";
        let want = run(small, small.len(), 100);
        for chunk in 1..small.len() {
            assert_eq!(run(small, chunk, 100), want, "reads of {chunk} bytes");
        }
    }

    /// A line longer than what one pump may read (the reactor's per-turn budget) is skipped over
    /// several pumps, and the fingerprint follows the skipped bytes: the tailer must not take
    /// the file for a rewritten one (issue 11, defect 6).
    #[test]
    fn a_line_longer_than_the_budget_is_skipped_over_several_pumps() {
        let mut input = b"ab\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1 << 20));
        input.extend_from_slice(b"\nkernel PANIC here\n");
        for budget in [4096, 100_000, 1 << 20] {
            let got = run_with(&input, input.len(), 100, budget);
            assert_eq!(got, vec![(1, b"ab".to_vec()), (2, vec![b'x'; 100]), (3, b"kernel PANIC here".to_vec())], "budget {budget}");
        }
    }

    /// A reload that shrinks the bound under an unfinished line cuts that line instead of
    /// overrunning the smaller buffer (issue 11, defect 7: a slice panic aborted the daemon).
    #[test]
    fn a_shrinking_bound_cuts_the_line_in_flight() {
        let mut input = b"first\n".to_vec();
        input.extend(std::iter::repeat_n(b'z', 200_000));
        let split = input.len();
        input.extend_from_slice(b" end\nnext\n");
        let mut asm = LineAssembler::new(0, 1);
        let mut scratch = Scratch::new(1 << 20);
        let mut counters = ReadCounters::default();
        let mut out = Record::default();
        let mut feeder = Feeder { input: &input[..split], chunk: usize::MAX, blocked: false };
        let mut budget = usize::MAX;
        while asm.pump(&mut scratch, &mut budget, &mut counters, &mut out, &mut |b, at| feeder.read(b, at)).unwrap() != Pumped::Eof {}
        assert_eq!(asm.pending(), 200_000);
        scratch.set_max_line(1000);
        let mut feeder = Feeder { input: &input, chunk: usize::MAX, blocked: false };
        while asm.pump(&mut scratch, &mut budget, &mut counters, &mut out, &mut |b, at| feeder.read(b, at)).unwrap() != Pumped::Eof {}
        assert_fingerprint(&asm, &input);
        assert_eq!(out.0, vec![(1, b"first".to_vec()), (2, vec![b'z'; 1000]), (3, b"next".to_vec())]);
        assert_eq!(counters.long_lines, 1);
        // Growing the bound keeps a partial line whole.
        let mut asm = LineAssembler::new(0, 1);
        let mut out = Record::default();
        let mut feeder = Feeder { input: b"abc", chunk: usize::MAX, blocked: false };
        asm.pump(&mut scratch, &mut budget, &mut counters, &mut out, &mut |b, at| feeder.read(b, at)).unwrap();
        scratch.set_max_line(5000);
        let mut feeder = Feeder { input: b"abcdef\n", chunk: usize::MAX, blocked: false };
        asm.pump(&mut scratch, &mut budget, &mut counters, &mut out, &mut |b, at| feeder.read(b, at)).unwrap();
        assert_eq!(out.0, vec![(1, b"abcdef".to_vec())]);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        /// The lines a reader must see: split on newlines, each cut to `max_line` if it does
        /// not fit the buffer; an unterminated tail is a line too.
        fn expected(input: &[u8], max_line: usize) -> Vec<(u64, Vec<u8>)> {
            let mut out = Vec::new();
            for (i, l) in input.split_inclusive(|&b| b == b'\n').enumerate() {
                let body = l.strip_suffix(b"\n").unwrap_or(l);
                let terminated = l.ends_with(b"\n");
                let fits = if terminated { l.len() <= max_line + READ_CHUNK } else { body.len() < max_line + READ_CHUNK };
                out.push((i as u64 + 1, if fits { body.to_vec() } else { body[..max_line].to_vec() }));
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn any_input_any_reads_any_budget(
                parts in proptest::collection::vec((0usize..3, 0usize..READ_CHUNK + 300), 0..12),
                chunk in 1usize..200_000,
                budget in 1usize..300_000,
            ) {
                let mut input = Vec::new();
                for (kind, len) in parts {
                    match kind {
                        0 => input.extend(std::iter::repeat_n(b'a', len % 50)),
                        1 => input.extend(std::iter::repeat_n(b'b', len)),
                        _ => {}
                    }
                    input.push(b'\n');
                }
                input.extend_from_slice(b"tail");
                prop_assert_eq!(run_with(&input, chunk, 100, budget), expected(&input, 100));
            }
        }
    }
}
