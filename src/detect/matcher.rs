//! The line matcher: a literal every match must contain, found with memchr's `memmem` across a
//! whole buffer of lines, then regex-lite on the one candidate line.
//!
//! regex-lite has no prefilter of its own and works on `&str`, so running it on every line would
//! cost a UTF-8 check and a slow scan per line. Instead [`required_literal`] reads the pattern's
//! top-level concatenation and keeps the longest run of plain characters that every match must
//! contain; lines without it are skipped at memmem speed. A pattern with no such literal (an
//! alternation, a leading class, `(?i)`) is matched line by line, and [`Matcher::has_prefilter`]
//! says so.

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
    literal: Option<memmem::Finder<'static>>,
}

impl Matcher {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Matcher, PatternError> {
        validate_pattern(pattern)?;
        let regex = regex_lite::Regex::new(pattern).map_err(|e| e.to_string())?;
        let literal = required_literal(pattern).map(|l| memmem::Finder::new(l.as_bytes()).into_owned());
        Ok(Matcher { regex, literal })
    }

    /// Whether lines are skipped by a literal search before the regex runs.
    pub fn has_prefilter(&self) -> bool {
        self.literal.is_some()
    }

    /// Whether one line (without its `\n`) matches.
    pub fn is_match(&self, line: &[u8]) -> bool {
        if let Some(lit) = &self.literal {
            if lit.find(line).is_none() {
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
        let mut pos = 0;
        while pos < hay.len() {
            let (start, end) = match &self.literal {
                Some(lit) => {
                    let at = pos + lit.find(&hay[pos..])?;
                    line_around(hay, pos, at)
                }
                None => (pos, memchr::memchr(b'\n', &hay[pos..]).map_or(hay.len(), |i| pos + i)),
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

/// The longest run of literal text that every match of `pattern` must contain, if the pattern's
/// shape is simple enough to be sure. Conservative: `None` whenever in doubt.
pub fn required_literal(pattern: &str) -> Option<String> {
    if pattern.contains("(?") {
        return None; // flags such as (?i) change what a literal means
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut runs: Vec<String> = Vec::new();
    let mut run = String::new();
    let mut i = 0;
    // Ends the current run, keeping it as a candidate.
    fn cut(run: &mut String, runs: &mut Vec<String>) {
        if !run.is_empty() {
            runs.push(std::mem::take(run));
        }
    }
    while i < chars.len() {
        let c = chars[i];
        // The literal character this token stands for, if it is one.
        let (lit, next) = match c {
            '\\' => {
                let e = *chars.get(i + 1)?;
                if e.is_ascii_alphanumeric() {
                    // \d \w \s \b \n \x.. : a class, an assertion or an escape we do not decode.
                    cut(&mut run, &mut runs);
                    i = skip_quantifier(&chars, i + 2)?;
                    continue;
                }
                (Some(e), i + 2)
            }
            '|' => return None,
            '(' => {
                cut(&mut run, &mut runs);
                i = skip_quantifier(&chars, skip_group(&chars, i)?)?;
                continue;
            }
            '[' => {
                cut(&mut run, &mut runs);
                i = skip_quantifier(&chars, skip_class(&chars, i)?)?;
                continue;
            }
            ')' | ']' | '{' | '}' | '?' | '*' | '+' => return None, // out of place: let the regex decide
            '.' | '^' | '$' => {
                cut(&mut run, &mut runs);
                i = skip_quantifier(&chars, i + 1)?;
                continue;
            }
            _ => (Some(c), i + 1),
        };
        let Some(lit) = lit else { continue };
        match chars.get(next) {
            Some('?' | '*') | Some('{') => {
                // The character may be absent (or repeated apart from its neighbours).
                cut(&mut run, &mut runs);
                i = skip_quantifier(&chars, next)?;
            }
            Some('+') => {
                // Present at least once, but what follows need not be adjacent to it.
                run.push(lit);
                cut(&mut run, &mut runs);
                i = skip_quantifier(&chars, next)?;
            }
            _ => {
                run.push(lit);
                i = next;
            }
        }
    }
    cut(&mut run, &mut runs);
    runs.into_iter().max_by_key(|r| r.len())
}

/// Skips a quantifier (`?`, `*`, `+`, `{m,n}`, each optionally lazy) at `i`; returns the index
/// after it, or `i` if there is none. `None` for an unterminated `{`.
fn skip_quantifier(chars: &[char], mut i: usize) -> Option<usize> {
    match chars.get(i) {
        Some('?' | '*' | '+') => i += 1,
        Some('{') => {
            i += chars[i..].iter().position(|&c| c == '}')? + 1;
        }
        _ => return Some(i),
    }
    if chars.get(i) == Some(&'?') {
        i += 1;
    }
    Some(i)
}

/// The index after the group opening at `i`, or `None` if it does not close.
fn skip_group(chars: &[char], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' => {
                i = skip_class(chars, i)?;
                continue;
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index after the class opening at `i` (`[...]`, `[^]...]`, `[[:alpha:]]`).
fn skip_class(chars: &[char], mut i: usize) -> Option<usize> {
    i += 1;
    if chars.get(i) == Some(&'^') {
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        i += 1;
    }
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' if chars.get(i + 1) == Some(&':') => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == ':' && chars[i + 1] == ']') {
                    i += 1;
                }
                i += 2;
            }
            '[' => {
                // A nested class (regex-lite supports set operations).
                i = skip_class(chars, i)?;
            }
            ']' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_required_literals() {
        let cases: &[(&str, Option<&str>)] = &[
            ("ERROR", Some("ERROR")),
            (".*container die.*image=crasher-docker-image", Some("image=crasher-docker-image")),
            ("^foo$", Some("foo")),
            ("colou?r", Some("colo")),
            ("ab+c", Some("ab")),
            ("abc*d", Some("ab")),
            ("x{2}yz", Some("yz")),
            ("a|b", None),
            ("(a|b)cd", Some("cd")),
            ("[Ee]rror", Some("rror")),
            (r"\[.*\] +usb [\w\-\.]+: USB disconnect", Some(": USB disconnect")),
            (r"\d+ items", Some(" items")),
            ("(?i)error", None),
            (".*", None),
            (r"a\.b", Some("a.b")),
            ("session opened for user [a-z]*", Some("session opened for user ")),
            ("[]x]yz", Some("yz")),
            ("ünï+", Some("ünï")),
        ];
        for (p, want) in cases {
            assert_eq!(required_literal(p).as_deref(), *want, "pattern {p:?}");
        }
    }

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
        let no_prefilter = Matcher::new("[0-9]ERR|ERR[0-9]").unwrap();
        assert!(!no_prefilter.has_prefilter());
        let (s, e) = no_prefilter.find_line(hay).unwrap();
        assert_eq!(&hay[s..e], b"fine ERR7 here");
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
