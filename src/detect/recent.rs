//! The last lines a log check has read, kept for the "before" context of its next alert: in one
//! buffer per check, each line followed by `\n`. One allocation per check instead of one per
//! line (30 by default). Line numbers run on within a file and start again at 1 in the next
//! one after a rotation, so they are kept as runs: (ordinal of the run's first line, its number).

/// The most recent lines, oldest first.
#[derive(Debug, Default)]
pub struct Recent {
    /// The lines, each ending with `\n` (a line cut to its bound ends there too).
    bytes: Vec<u8>,
    /// Ordinal (count of lines ever kept) of the first line in `bytes`.
    base: u64,
    /// How many lines `bytes` holds.
    count: usize,
    /// Where numbering starts again: (ordinal, number), ascending; the first covers `base`.
    runs: Vec<(u64, u64)>,
}

impl Recent {
    /// How many lines are kept.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Keeps the last `want` lines of `buf` (complete lines, ending with `\n`; the last is
    /// line `next_line - 1`), after the older ones kept so far, each cut to `keep` bytes, and
    /// drops the oldest beyond `want`.
    pub fn remember(&mut self, buf: &[u8], next_line: u64, want: usize, keep: usize) {
        if want == 0 || buf.is_empty() {
            self.clear();
            return;
        }
        let mut from = buf.len();
        let mut taken = 0;
        while taken < want && from > 0 {
            from = memchr::memrchr(b'\n', &buf[..from - 1]).map_or(0, |i| i + 1);
            taken += 1;
        }
        if taken == want {
            self.clear();
        } else {
            self.keep_last(want - taken);
        }
        let ordinal = self.base + self.count as u64;
        let number = next_line - taken as u64;
        if self.number_of(ordinal) != Some(number) {
            self.runs.push((ordinal, number));
        }
        let region = &buf[from..];
        if region.len() <= keep + 1 || longest_line(region) <= keep {
            self.bytes.extend_from_slice(region);
        } else {
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', region) {
                self.bytes.extend_from_slice(&region[start..end.min(start + keep)]);
                self.bytes.push(b'\n');
                start = end + 1;
            }
        }
        self.count += taken;
        // One long line once must not keep a large buffer for good.
        if self.bytes.capacity() > 4096 && self.bytes.capacity() > 2 * self.bytes.len() {
            self.bytes.shrink_to(2 * self.bytes.len());
        }
    }

    /// Drops the oldest lines, keeping the last `n`.
    pub fn keep_last(&mut self, n: usize) {
        if self.count <= n {
            return;
        }
        let drop = self.count - n;
        let cut = memchr::memchr_iter(b'\n', &self.bytes).nth(drop - 1).map_or(self.bytes.len(), |i| i + 1);
        self.bytes.drain(..cut);
        self.base += drop as u64;
        self.count = n;
        // Runs that start at or before the new first line: only the last of them still counts.
        let covering = self.runs.iter().rposition(|&(o, _)| o <= self.base).unwrap_or(0);
        self.runs.drain(..covering);
    }

    /// Forgets every line.
    pub fn clear(&mut self) {
        self.base += self.count as u64;
        self.bytes.clear();
        self.count = 0;
        self.runs.clear();
    }

    /// The number of the line at `ordinal`, continuing the last run (the next line's number
    /// for one past the end); `None` before any run.
    fn number_of(&self, ordinal: u64) -> Option<u64> {
        let &(o, n) = self.runs.iter().rev().find(|&&(o, _)| o <= ordinal)?;
        Some(n + (ordinal - o))
    }

    /// The last `n` lines (or fewer), oldest first, with their numbers.
    pub fn last(&self, n: usize) -> impl Iterator<Item = (u64, &[u8])> {
        let skip = self.count.saturating_sub(n);
        let body = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        let lines = if self.count == 0 { None } else { Some(body.split(|&b| b == b'\n')) };
        lines.into_iter().flatten().enumerate().skip(skip).map(move |(i, l)| (self.number_of(self.base + i as u64).unwrap_or_default(), l))
    }
}

/// The length of the longest line of `region` (lines ending with `\n`), found at memchr speed.
fn longest_line(region: &[u8]) -> usize {
    let mut start = 0;
    let mut longest = 0;
    for end in memchr::memchr_iter(b'\n', region) {
        longest = longest.max(end - start);
        start = end + 1;
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &Recent) -> Vec<(u64, String)> {
        r.last(usize::MAX).map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned())).collect()
    }

    fn pairs(v: &[(u64, &str)]) -> Vec<(u64, String)> {
        v.iter().map(|(n, l)| (*n, l.to_string())).collect()
    }

    #[test]
    fn keeps_the_last_lines_across_buffers() {
        let mut r = Recent::default();
        r.remember(b"a\nb\n", 3, 3, 100);
        assert_eq!(lines(&r), pairs(&[(1, "a"), (2, "b")]));
        r.remember(b"c\nd\n", 5, 3, 100);
        assert_eq!(lines(&r), pairs(&[(2, "b"), (3, "c"), (4, "d")]));
        r.remember(b"e\nf\ng\nh\n", 9, 3, 100);
        assert_eq!(lines(&r), pairs(&[(6, "f"), (7, "g"), (8, "h")]));
        assert_eq!(r.last(2).map(|(n, _)| n).collect::<Vec<_>>(), vec![7, 8]);
        r.keep_last(1);
        assert_eq!(lines(&r), pairs(&[(8, "h")]));
    }

    #[test]
    fn numbers_start_again_in_the_next_file() {
        let mut r = Recent::default();
        r.remember(b"a1\na2\na3\n", 4, 5, 100);
        // Rotated: the new file's lines are numbered from 1.
        r.remember(b"b1\n", 2, 5, 100);
        assert_eq!(lines(&r), pairs(&[(1, "a1"), (2, "a2"), (3, "a3"), (1, "b1")]));
        r.remember(b"b2\nb3\n", 4, 5, 100);
        assert_eq!(lines(&r), pairs(&[(2, "a2"), (3, "a3"), (1, "b1"), (2, "b2"), (3, "b3")]));
        r.remember(b"b4\nb5\n", 6, 5, 100);
        assert_eq!(lines(&r), pairs(&[(1, "b1"), (2, "b2"), (3, "b3"), (4, "b4"), (5, "b5")]));
        assert_eq!(r.runs.len(), 1);
        // Rotated again and again, in one-line files.
        r.remember(b"c1\n", 2, 5, 100);
        r.remember(b"d1\n", 2, 5, 100);
        assert_eq!(lines(&r), pairs(&[(3, "b3"), (4, "b4"), (5, "b5"), (1, "c1"), (1, "d1")]));
        r.remember(b"d2\nd3\nd4\nd5\nd6\n", 7, 5, 100);
        assert_eq!(lines(&r), pairs(&[(2, "d2"), (3, "d3"), (4, "d4"), (5, "d5"), (6, "d6")]));
        assert_eq!(r.runs.len(), 1);
    }

    #[test]
    fn empty_lines_and_cut_lines_keep_their_numbers() {
        let mut r = Recent::default();
        r.remember(b"\n\nlong line here\n", 4, 5, 4);
        assert_eq!(lines(&r), pairs(&[(1, ""), (2, ""), (3, "long")]));
        r.remember(b"x\n", 5, 5, 4);
        assert_eq!(lines(&r), pairs(&[(1, ""), (2, ""), (3, "long"), (4, "x")]));
        r.remember(b"", 5, 5, 4);
        assert!(r.is_empty());
    }

    #[test]
    fn a_long_line_once_does_not_keep_a_large_buffer() {
        let mut r = Recent::default();
        let mut big = vec![b'x'; 100_000];
        big.push(b'\n');
        r.remember(&big, 2, 3, 200_000);
        r.remember(b"a\nb\nc\n", 5, 3, 200_000);
        assert!(r.bytes.capacity() <= 4096 || r.bytes.capacity() <= 2 * r.bytes.len(), "{}", r.bytes.capacity());
        assert_eq!(lines(&r), pairs(&[(2, "a"), (3, "b"), (4, "c")]));
    }
}
