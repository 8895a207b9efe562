//! The line matcher: literals every match must contain, found with memchr's `memmem` across a
//! whole buffer of lines, then regex-lite on the candidate line only.
//!
//! regex-lite has no prefilter of its own, works on `&str`, and its matching engine runs at
//! some ten MB/s: running it on every line would make catching up on a big log take minutes.
//! [`super::literal::required_literals`] finds a set of literals one of which every match
//! contains; lines without any of them are skipped at memmem speed. A pattern with no such set
//! (`(?i)...`, `\d+ ms`) is matched line by line, and [`Matcher::has_prefilter`] says so.

use memchr::memmem;

/// Why a pattern was refused.
pub type PatternError = String;

/// Checks that `pattern` is a regex lookout can run; the message says what is wrong.
pub fn validate_pattern(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err("the pattern is empty (it would match every line)".into());
    }
    regex_lite::Regex::new(pattern).map(|_| ()).map_err(|e| {
        let msg = e.to_string();
        let hint = if pattern.contains("(?=") || pattern.contains("(?!") || pattern.contains("(?<") {
            " (look-around is not supported)"
        } else if pattern.contains("\\p{") || pattern.contains("\\P{") {
            " (Unicode classes are not supported)"
        } else {
            ""
        };
        format!("invalid pattern {pattern:?}{hint}: {}", msg.lines().last().unwrap_or(&msg).trim())
    })
}

/// A compiled pattern that finds matching lines in buffers of `\n`-terminated lines.
#[derive(Debug, Clone)]
pub struct Matcher {
    regex: regex_lite::Regex,
    /// One finder per required literal; empty without a prefilter.
    literals: Vec<memmem::Finder<'static>>,
    /// The pattern starts with `(?i)`: the literals are lowercase and searched for in an
    /// ASCII-lowercased copy (regex-lite's case-insensitivity is ASCII only).
    fold: bool,
}

impl Matcher {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Matcher, PatternError> {
        validate_pattern(pattern)?;
        let regex = regex_lite::Regex::new(pattern).map_err(|e| e.to_string())?;
        let (fold, rest) = match pattern.strip_prefix("(?i)") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let literals = super::literal::required_literals(rest)
            .filter(|set| !fold || set.iter().all(|l| l.is_ascii()))
            .unwrap_or_default()
            .iter()
            .map(|l| if fold { l.to_ascii_lowercase() } else { l.clone() })
            .map(|l| memmem::Finder::new(l.as_bytes()).into_owned())
            .collect();
        Ok(Matcher { regex, literals, fold })
    }

    /// Whether lines are skipped by a literal search before the regex runs.
    pub fn has_prefilter(&self) -> bool {
        !self.literals.is_empty()
    }

    /// Whether one line (without its `\n`) matches.
    pub fn is_match(&self, line: &[u8]) -> bool {
        if self.has_prefilter() {
            let folded;
            let hay = if self.fold {
                folded = line.to_ascii_lowercase();
                &folded[..]
            } else {
                line
            };
            if !self.literals.iter().any(|l| l.find(hay).is_some()) {
                return false;
            }
        }
        self.regex_matches(line)
    }

    fn regex_matches(&self, line: &[u8]) -> bool {
        match std::str::from_utf8(line) {
            Ok(s) => self.regex.is_match(s),
            Err(_) => self.regex.is_match(&String::from_utf8_lossy(line)),
        }
    }

    /// The first matching line in `hay`, as `(start, end)` with `end` at its `\n` (or at
    /// `hay.len()` for an unterminated last line).
    pub fn find_line(&self, hay: &[u8]) -> Option<(usize, usize)> {
        // ASCII lowercasing keeps every byte where it is, so positions in the copy are
        // positions in `hay`.
        let folded = if self.fold && self.has_prefilter() { Some(hay.to_ascii_lowercase()) } else { None };
        let search = folded.as_deref().unwrap_or(hay);
        // Next hit of each literal at or after `pos`, so that a literal with no hit left is not
        // searched again for every candidate of another one. `usize::MAX`: none in `hay`.
        let mut next = [0usize; super::literal::MAX_LITERALS];
        let next = &mut next[..self.literals.len()];
        let mut first = true;
        let mut pos = 0;
        while pos < hay.len() {
            let (start, end) = if self.literals.is_empty() {
                (pos, memchr::memchr(b'\n', &hay[pos..]).map_or(hay.len(), |i| pos + i))
            } else {
                for (i, lit) in self.literals.iter().enumerate() {
                    if first || (next[i] != usize::MAX && next[i] < pos) {
                        next[i] = lit.find(&search[pos..]).map_or(usize::MAX, |at| pos + at);
                    }
                }
                first = false;
                let at = *next.iter().min()?;
                if at == usize::MAX {
                    return None;
                }
                line_around(hay, pos, at)
            };
            if self.regex_matches(&hay[start..end]) {
                return Some((start, end));
            }
            pos = end + 1;
        }
        None
    }
}

/// The bounds of the line of `hay` holding byte `at`, not starting before `floor`.
fn line_around(hay: &[u8], floor: usize, at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &hay[floor..at]).map_or(floor, |i| floor + i + 1);
    let end = memchr::memchr(b'\n', &hay[at..]).map_or(hay.len(), |i| at + i);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefilter must never hide a line the regex matches.
    #[test]
    fn prefilter_agrees_with_the_regex() {
        let patterns = [
            "ERROR",
            "colou?r",
            "ab+c",
            "abc*d",
            "x{2}yz",
            "(a|b)cd",
            "[Ee]rror",
            r"\d+ items",
            "a.b",
            "^ab",
            "b$",
            "a+?b",
            "(ab)+c",
            "ba*",
            "a{1,2}b",
        ];
        let alphabet = [b'a', b'b', b'c', b'd', b'x', b'y', b'z', b'E', b'r', b'o', b'u', b' ', b'1', b'R', b'i', b't', b'e', b'm', b's'];
        let mut seed = 0x2545F4914F6CDD1Du64;
        for p in patterns {
            let m = Matcher::new(p).unwrap();
            let re = regex_lite::Regex::new(p).unwrap();
            for _ in 0..3000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % 9) as usize;
                let line: Vec<u8> = (0..len).map(|k| alphabet[((seed >> (k * 5)) % alphabet.len() as u64) as usize]).collect();
                let s = std::str::from_utf8(&line).unwrap();
                assert_eq!(m.is_match(&line), re.is_match(s), "pattern {p:?} line {s:?}");
            }
        }
    }

    #[test]
    fn finds_the_first_matching_line() {
        let m = Matcher::new("ERR[0-9]").unwrap();
        let hay = b"ok\nERRx not\nfine ERR7 here\nERR8\n";
        let (s, e) = m.find_line(hay).unwrap();
        assert_eq!(&hay[s..e], b"fine ERR7 here");
        let no_prefilter = Matcher::new("(?i)[0-9]").unwrap();
        assert!(!no_prefilter.has_prefilter());
        let (s, e) = no_prefilter.find_line(hay).unwrap();
        assert_eq!(&hay[s..e], b"fine ERR7 here");
        let folded = Matcher::new("(?i)err[0-9]").unwrap();
        assert!(folded.has_prefilter());
        assert_eq!(folded.find_line(b"ok\nfine eRr7 here\n"), Some((3, 17)));
        assert!(folded.is_match(b"ERR9"));
        assert!(!folded.is_match(b"ER R9"));
        assert_eq!(m.find_line(b"nothing\nhere\n"), None);
        assert_eq!(m.find_line(b"last ERR1"), Some((0, 9)));
    }

    #[test]
    fn invalid_utf8_and_nul_still_match() {
        let m = Matcher::new("ERROR").unwrap();
        assert!(m.is_match(b"\xff\xfe ERROR \x00 tail"));
        assert!(!m.is_match(b"\xff\xfe EROR"));
    }

    #[test]
    fn bad_patterns_say_why() {
        let e = validate_pattern("([unclosed").unwrap_err();
        assert!(e.starts_with("invalid pattern \"([unclosed\""), "{e}");
        assert!(validate_pattern("").is_err());
        assert!(validate_pattern("(?=x)").unwrap_err().contains("look-around"));
    }
}
