//! Turning a byte stream into lines: shared by the file tailer and the command runner.
//!
//! The assembler keeps the unterminated tail of what it read until its newline arrives, hands
//! complete lines to a [`LineSink`] in large buffers (one call per read, not per line), counts
//! lines, and cuts a line that does not fit the read buffer (`max_line + READ_CHUNK` bytes): its
//! first `max_line` bytes are handed on as one line and the rest up to the newline is skipped,
//! counted. Which lines are cut depends only on their length, never on how reads fell; lines
//! between `max_line` and the buffer size are handed on whole (the detector cuts them to
//! `max_line` in alerts). Reads go through a closure, so the
//! same code serves `pread` on a file and `read` on a non-blocking pipe, and never exceeds the
//! caller's byte budget.

use std::io;

/// Bytes read per call beyond the length bound (the read buffer is `max_line + READ_CHUNK`;
/// 128 KiB measured best of 64-512 KiB, BENCHMARKS.md).
pub const READ_CHUNK: usize = 128 * 1024;
/// Length of the fingerprint kept of the last bytes handed on.
pub const FINGERPRINT: usize = 64;

/// Receives what an assembler reads.
pub trait LineSink {
    /// Complete lines (`buf` ends with `\n`); the first is number `first_line`. Returns how many
    /// lines `buf` holds.
    fn lines(&mut self, buf: &[u8], first_line: u64) -> u64;
    /// One line without a newline: a line cut at the length bound, or the unterminated end of a
    /// stream that will not be read again.
    fn line(&mut self, line: &[u8], number: u64);
}

/// The shared read buffer: `max_line + READ_CHUNK` bytes, reused by every source.
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

    /// Resizes for a new length bound.
    pub fn set_max_line(&mut self, max_line: usize) {
        if max_line != self.max_line {
            *self = Scratch::new(max_line);
        }
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
    /// The last bytes handed on (up to [`FINGERPRINT`]), ending at `offset`.
    last: Vec<u8>,
}

impl LineAssembler {
    /// An assembler whose next line starts at `offset` and is number `line`.
    pub fn new(offset: u64, line: u64) -> Self {
        LineAssembler { offset, line, ..Default::default() }
    }

    /// Offset of the next line's start.
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

    /// The last bytes handed on, ending at `offset`.
    pub fn last(&self) -> &[u8] {
        &self.last
    }

    /// Sets the bytes handed on last (read back from the file when resuming at a saved
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
        let mut filled = self.partial.len();
        buf[..filled].copy_from_slice(&self.partial);
        self.partial.clear();
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
                        self.offset += filled as u64;
                        filled = 0;
                        continue;
                    }
                    Some(i) => {
                        start = fresh + i + 1;
                        self.discarding = false;
                    }
                }
            }
            let search_from = fresh.max(start);
            if let Some(i) = memchr::memrchr(b'\n', &buf[search_from..filled]) {
                let end = search_from + i + 1;
                self.line += sink.lines(&buf[start..end], self.line);
                let fp_start = end.saturating_sub(FINGERPRINT).max(start);
                self.last.clear();
                self.last.extend_from_slice(&buf[fp_start..end]);
                start = end;
            }
            if start > 0 {
                self.offset += start as u64;
                buf.copy_within(start..filled, 0);
                filled -= start;
            }
            if filled == buf.len() {
                // No newline in a full buffer: the line is longer than anything we keep whole.
                counters.long_lines += 1;
                sink.line(&buf[..max_line], self.line);
                self.line += 1;
                self.offset += filled as u64;
                filled = 0;
                self.discarding = true;
            }
        };
        self.partial.extend_from_slice(&buf[..filled]);
        result
    }

    /// Hands on an unterminated last line; called when the stream will not be read again.
    pub fn finish(&mut self, sink: &mut dyn LineSink) {
        if !self.partial.is_empty() && !self.discarding {
            sink.line(&self.partial, self.line);
            self.line += 1;
            self.offset += self.partial.len() as u64;
        }
        self.partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Vec<(u64, Vec<u8>)>);

    impl LineSink for Record {
        fn lines(&mut self, buf: &[u8], first_line: u64) -> u64 {
            let mut n = 0;
            for l in buf.split_inclusive(|&b| b == b'\n') {
                self.0.push((first_line + n, l[..l.len() - 1].to_vec()));
                n += 1;
            }
            n
        }
        fn line(&mut self, line: &[u8], number: u64) {
            self.0.push((number, line.to_vec()));
        }
    }

    /// Feeds `input` in reads of at most `chunk` bytes, with a WouldBlock between reads.
    fn run(input: &[u8], chunk: usize, max_line: usize) -> Vec<(u64, Vec<u8>)> {
        let mut asm = LineAssembler::new(0, 1);
        let mut scratch = Scratch::new(max_line);
        let mut counters = ReadCounters::default();
        let mut out = Record::default();
        let mut pos = 0;
        let mut blocked = false;
        loop {
            let mut budget = usize::MAX;
            let mut read = |buf: &mut [u8], _at: u64| -> io::Result<usize> {
                if blocked {
                    blocked = false;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                blocked = true;
                let n = chunk.min(buf.len()).min(input.len() - pos);
                buf[..n].copy_from_slice(&input[pos..pos + n]);
                pos += n;
                Ok(n)
            };
            match asm.pump(&mut scratch, &mut budget, &mut counters, &mut out, &mut read).unwrap() {
                Pumped::Eof => break,
                Pumped::WouldBlock | Pumped::Budget => {}
            }
        }
        asm.finish(&mut out);
        assert_eq!(counters.bytes, input.len() as u64);
        out.0
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
}
