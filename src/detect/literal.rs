//! Which literals every match of a pattern must contain: the prefilter's input.
//!
//! [`required_literals`] parses the pattern just enough (concatenation, alternation, groups,
//! quantifiers, escapes, classes) to find a set of strings such that every match of the pattern
//! contains at least one of them: the longest run of plain characters in a concatenation, or the
//! union of such runs over the branches of an alternation (`error|fail|panic`,
//! `.*(segfault|core dumped)`). It is conservative: whenever the pattern does something it does
//! not model (inline flags such as `(?i)`, an empty branch, more than [`MAX_LITERALS`] branches),
//! it answers `None` and the matcher runs the regex on every line.

/// Most literals in one set; more make the search slower than the regex is worth avoiding.
pub const MAX_LITERALS: usize = 8;

#[derive(Debug)]
enum Atom {
    Char(char),
    Group(Vec<Vec<Piece>>),
    /// A class, `.`, an anchor, an escape such as `\d`: matches something, but not a known literal.
    Other,
}

#[derive(Debug)]
struct Piece {
    atom: Atom,
    /// Least number of repetitions (0 for `?`, `*`, `{0,n}`).
    min: u32,
    /// Exactly once (no quantifier, or `{1}`).
    once: bool,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self) -> Option<Vec<Vec<Piece>>> {
        let mut branches = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concat()?);
        }
        Some(branches)
    }

    fn concat(&mut self) -> Option<Vec<Piece>> {
        let mut pieces = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let (min, once) = self.quantifier()?;
            pieces.push(Piece { atom, min, once });
        }
        Some(pieces)
    }

    fn atom(&mut self) -> Option<Atom> {
        let c = self.peek()?;
        self.pos += 1;
        Some(match c {
            '\\' => {
                let e = self.peek()?;
                self.pos += 1;
                if !e.is_ascii_alphanumeric() {
                    return Some(Atom::Char(e));
                }
                if e == 'x' && self.peek() == Some('{') {
                    self.pos += self.chars[self.pos..].iter().position(|&c| c == '}')? + 1;
                } else if e == 'x' {
                    self.pos += 2;
                }
                Atom::Other
            }
            '(' => {
                if self.peek() == Some('?') {
                    match (self.chars.get(self.pos + 1), self.chars.get(self.pos + 2)) {
                        (Some(':'), _) => self.pos += 2,
                        (Some('P'), Some('<')) | (Some('<'), _) => {
                            self.pos += self.chars[self.pos..].iter().position(|&c| c == '>')? + 1;
                        }
                        // Inline flags change what a literal means.
                        _ => return None,
                    }
                }
                let inner = self.alternation()?;
                if self.peek() != Some(')') {
                    return None;
                }
                self.pos += 1;
                Atom::Group(inner)
            }
            '[' => {
                self.pos = skip_class(&self.chars, self.pos - 1)?;
                Atom::Other
            }
            '.' | '^' | '$' => Atom::Other,
            // A quantifier or bracket out of place: let the regex compiler judge it.
            '*' | '+' | '?' | '{' | '}' | ']' | ')' | '|' => return None,
            c => Atom::Char(c),
        })
    }

    /// Reads an optional quantifier: `(min, exactly once)`.
    fn quantifier(&mut self) -> Option<(u32, bool)> {
        let q = match self.peek() {
            Some('?') | Some('*') => {
                self.pos += 1;
                (0, false)
            }
            Some('+') => {
                self.pos += 1;
                (1, false)
            }
            Some('{') => {
                let close = self.pos + self.chars[self.pos..].iter().position(|&c| c == '}')?;
                let body: String = self.chars[self.pos + 1..close].iter().collect();
                self.pos = close + 1;
                let (lo, hi) = match body.split_once(',') {
                    Some((lo, hi)) => (lo.trim(), Some(hi.trim())),
                    None => (body.trim(), None),
                };
                let min: u32 = lo.parse().ok()?;
                let once = min == 1 && (hi.is_none() || hi == Some("1"));
                (min, once)
            }
            _ => return Some((1, true)),
        };
        if self.peek() == Some('?') {
            self.pos += 1; // lazy
        }
        Some(q)
    }
}

/// The index after the class opening at `i` (`[...]`, `[^]...]`, `[[:alpha:]]`, nested sets).
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
            '[' => i = skip_class(chars, i)?,
            ']' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn required_of_alternation(branches: &[Vec<Piece>]) -> Option<Vec<String>> {
    let mut set: Vec<String> = Vec::new();
    for b in branches {
        for lit in required_of_concat(b)? {
            if !set.contains(&lit) {
                set.push(lit);
            }
        }
    }
    (set.len() <= MAX_LITERALS).then_some(set)
}

fn required_of_concat(pieces: &[Piece]) -> Option<Vec<String>> {
    let mut candidates: Vec<Vec<String>> = Vec::new();
    let mut run = String::new();
    let cut = |run: &mut String, candidates: &mut Vec<Vec<String>>| {
        if !run.is_empty() {
            candidates.push(vec![std::mem::take(run)]);
        }
    };
    for p in pieces {
        match &p.atom {
            Atom::Char(c) if p.once => run.push(*c),
            Atom::Char(c) if p.min >= 1 => {
                // `a+`, `a{2,}`: present, but what follows need not be adjacent.
                run.push(*c);
                cut(&mut run, &mut candidates);
            }
            Atom::Group(branches) if p.min >= 1 => {
                cut(&mut run, &mut candidates);
                if let Some(set) = required_of_alternation(branches) {
                    candidates.push(set);
                }
            }
            _ => cut(&mut run, &mut candidates),
        }
    }
    cut(&mut run, &mut candidates);
    // The best set: the longest shortest literal (fewer false candidates), then fewer literals.
    candidates.into_iter().filter(|s| !s.is_empty()).max_by_key(|s| (s.iter().map(String::len).min().unwrap_or(0), usize::MAX - s.len()))
}

/// Literals at least one of which every match of `pattern` contains; `None` when unsure.
pub fn required_literals(pattern: &str) -> Option<Vec<String>> {
    let mut p = Parser { chars: pattern.chars().collect(), pos: 0 };
    let branches = p.alternation()?;
    if p.pos != p.chars.len() {
        return None; // an unbalanced ')'
    }
    required_of_alternation(&branches).filter(|s| !s.is_empty() && s.iter().all(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_required_literals() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("ERROR", Some(&["ERROR"])),
            (".*container die.*image=crasher-docker-image", Some(&["image=crasher-docker-image"])),
            ("^foo$", Some(&["foo"])),
            ("colou?r", Some(&["colo"])),
            ("ab+c", Some(&["ab"])),
            ("abc*d", Some(&["ab"])),
            ("x{2}yz", Some(&["yz"])),
            ("x{1}yz", Some(&["xyz"])),
            ("a|b", Some(&["a", "b"])),
            ("error|fail|panic", Some(&["error", "fail", "panic"])),
            ("(segfault|panic)", Some(&["segfault", "panic"])),
            (".*(?:segfault|core dumped) in (worker|main)", Some(&["segfault", "core dumped"])),
            ("(a|b)cd", Some(&["cd"])),
            ("(a|)cd", Some(&["cd"])),
            ("a|", None),
            ("(a|b)?", None),
            ("[Ee]rror", Some(&["rror"])),
            (r"\[.*\] +usb [\w\-\.]+: USB disconnect", Some(&[": USB disconnect"])),
            (r"\d+ items", Some(&[" items"])),
            ("(?i)error", None),
            (".*", None),
            (r"a\.b", Some(&["a.b"])),
            ("session opened for user [a-z]*", Some(&["session opened for user "])),
            ("[]x]yz", Some(&["yz"])),
            ("ünï+", Some(&["ünï"])),
            (r"\x41BC", Some(&["BC"])),
            ("(?P<w>wor)ld", Some(&["wor"])),
            ("a|b|c|d|e|f|g|h|i", None),
        ];
        for (p, want) in cases {
            let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(required_literals(p), want, "pattern {p:?}");
        }
    }
}
