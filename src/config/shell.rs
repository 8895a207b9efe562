//! A safe reader and writer for the bash-assignment files Mender Monitor uses (check files and
//! `config.sh`).
//!
//! The original sources these files with bash; lookout reads them as data and never executes
//! anything. Files are bytes, as bash reads them: values are bytes too (a `LOG_FILE` path need
//! not be UTF-8). Accepted: `KEY=value`, `KEY="value"`, `KEY='value'`, `KEY=$'C-style'`
//! (`\n`, `\t`, `\xHH`, octal, `\cX`, ... as bash reads them), `KEY=$"value"`, concatenations of
//! those (`KEY="a"'b'c`), backslash escapes as bash reads them, `$NAME` / `${NAME}` expanded
//! from assignments earlier in the same file, `export KEY=...`, `#` comments, blank lines,
//! several assignments on one line separated by `;`, and quoted values spanning lines. NUL
//! bytes are dropped, as bash drops them. Everything else (command substitution, unknown
//! variables, commands, `\u` escapes whose meaning depends on bash's locale) is reported with
//! its line number and skipped; the rest of the file is still read.

use std::borrow::Cow;
use std::fmt;

/// One `KEY=value` found in a file, with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The variable name.
    pub key: String,
    /// The value after quote removal, escapes and expansion: bytes, as bash keeps them.
    pub value: Vec<u8>,
    /// 1-based line number of the assignment.
    pub line: usize,
}

impl Assignment {
    /// The value as text; `None` if it is not valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// A problem found on one line; the line is skipped, the file is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The result of reading one file: the assignments in order, and what was wrong.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Assignments in file order; a key assigned twice appears twice (the last one wins).
    pub assignments: Vec<Assignment>,
    /// Problems, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// The value a bash `source` would leave for `key`: the last assignment wins.
    pub fn get(&self, key: &str) -> Option<&Assignment> {
        self.assignments.iter().rev().find(|a| a.key == key)
    }
}

/// Reads bash-assignment text. Never fails as a whole: bad lines become diagnostics.
pub fn parse(text: impl AsRef<[u8]>) -> Parsed {
    let text = text.as_ref();
    // bash drops NUL bytes from what it reads; so do we (line numbers are unaffected).
    let bytes: Cow<[u8]> =
        if text.contains(&0) { Cow::Owned(text.iter().copied().filter(|&b| b != 0).collect()) } else { Cow::Borrowed(text) };
    let mut p = Parser { b: &bytes, pos: 0, line: 1, out: Parsed::default() };
    p.run();
    p.out
}

/// Bytes that bash mishandles after a backslash inside double quotes (its internal CTLESC and
/// CTLNUL markers: `"\<DEL><DEL>"` reads back as `\<DEL>`); `quote` writes them as `$'\xHH'`.
fn bash_marker(c: char) -> bool {
    c == '\u{1}' || c == '\u{7f}'
}

/// Quotes `value` so that bash (and [`parse`]) read it back unchanged, in the style Mender's
/// `create` writes: plain numbers bare, text in double quotes with only the characters bash
/// treats specially escaped. Bytes that are not UTF-8 (a path is bytes), and the two bytes bash
/// mangles inside double quotes (0x01, 0x7f), are written as `$'\xHH'` next to the quoted text
/// (`"/var/log/"$'\xff'".log"`), which bash concatenates. A NUL byte cannot be in a bash
/// variable; `value` is expected to have none (argv and [`parse`] never give one).
pub fn quote(value: &[u8]) -> String {
    if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
        return String::from_utf8_lossy(value).into_owned();
    }
    if value.is_empty() {
        return "\"\"".into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    let mut text = String::new();
    let mut raw: Vec<u8> = Vec::new();
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            if bash_marker(c) {
                double_quoted_into(&mut out, &std::mem::take(&mut text));
                raw.push(c as u8);
            } else {
                ansi_c_into(&mut out, &std::mem::take(&mut raw));
                text.push(c);
            }
        }
        if !chunk.invalid().is_empty() {
            double_quoted_into(&mut out, &std::mem::take(&mut text));
            raw.extend_from_slice(chunk.invalid());
        }
    }
    double_quoted_into(&mut out, &text);
    ansi_c_into(&mut out, &raw);
    out
}

/// Appends `"text"` with `" $ \` escaped and a backslash doubled only where bash would
/// otherwise consume it (nothing for empty text).
fn double_quoted_into(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            // Inside double quotes bash keeps a backslash unless it precedes one of
            // `$ \` " \ newline`; escape only where it would otherwise be consumed.
            '\\' if matches!(chars.peek(), None | Some('$' | '`' | '"' | '\\' | '\n')) => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `$'\xHH...'` for `bytes` (nothing for none).
fn ansi_c_into(out: &mut String, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    out.push_str("$'");
    for b in bytes {
        out.push_str(&format!("\\x{b:02x}"));
    }
    out.push('\'');
}

/// A byte as a message shows it: itself if printable ASCII, else `\xHH`.
fn shown(b: u8) -> String {
    if b.is_ascii_graphic() { char::from(b).to_string() } else { format!("\\x{b:02x}") }
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    line: usize,
    out: Parsed,
}

/// Why a statement could not be read; the parser skips to the end of the line.
struct Bad(String);

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.b.get(self.pos + n).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek() {
            if c == b'\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn run(&mut self) {
        // A `;` ends the statement before it; on its own it is a syntax error to bash.
        let mut ended = false;
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return,
                Some(b'\n') => {
                    self.bump();
                    ended = false;
                }
                Some(b';') if ended => {
                    self.pos += 1;
                    ended = false;
                }
                Some(b'#') => self.skip_to_eol(),
                Some(c) => {
                    let line = self.line;
                    let result = if c == b';' { Err(Bad("`;` without a statement before it".into())) } else { self.statement(line) };
                    ended = result.is_ok();
                    if let Err(Bad(message)) = result {
                        self.out.diagnostics.push(Diagnostic { line, message });
                        self.skip_to_eol();
                    }
                }
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == b'_') {
            return None;
        }
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        Some(String::from_utf8_lossy(&self.b[start..self.pos]).into_owned())
    }

    fn statement(&mut self, line: usize) -> Result<(), Bad> {
        let start = self.pos;
        let mut key = self.name();
        if key.as_deref() == Some("export") && matches!(self.peek(), Some(b' ' | b'\t')) {
            self.skip_blanks();
            key = self.name();
            if key.is_some() && matches!(self.peek(), None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'#')) {
                // `export KEY` without a value: nothing to assign.
                return self.end_of_statement();
            }
        }
        let Some(key) = key.filter(|_| self.peek() == Some(b'=')) else {
            self.pos = start;
            let word_start = self.pos;
            while self.peek().is_some_and(|c| !c.is_ascii_whitespace()) && self.pos - word_start < 40 {
                self.pos += 1;
            }
            let word = String::from_utf8_lossy(&self.b[word_start..self.pos]);
            return Err(Bad(format!("not a variable assignment (`{word}`); lookout reads KEY=value lines only")));
        };
        self.pos += 1; // '='
        let value = self.value()?;
        self.end_of_statement()?;
        self.out.assignments.push(Assignment { key, value, line });
        Ok(())
    }

    fn end_of_statement(&mut self) -> Result<(), Bad> {
        self.skip_blanks();
        match self.peek() {
            None | Some(b'\n' | b';') => Ok(()),
            Some(b'#') => {
                self.skip_to_eol();
                Ok(())
            }
            Some(c) => Err(Bad(format!("unexpected `{}` after the value (quote values that contain spaces)", shown(c)))),
        }
    }

    fn value(&mut self) -> Result<Vec<u8>, Bad> {
        let mut v = Vec::new();
        // bash expands an unquoted `~` at the start of a value and after an unquoted `:`.
        let mut tilde_expands = true;
        loop {
            let at_tilde = std::mem::replace(&mut tilde_expands, false);
            match self.peek() {
                None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';') => return Ok(v),
                Some(b'"') => {
                    let opened = self.line;
                    self.pos += 1;
                    self.double_quoted(&mut v, opened)?;
                }
                Some(b'\'') => {
                    let opened = self.line;
                    self.pos += 1;
                    loop {
                        match self.bump() {
                            None => return Err(Bad(format!("unterminated ' quote opened on line {opened}"))),
                            Some(b'\'') => break,
                            Some(c) => v.push(c),
                        }
                    }
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.bump() {
                        // A line continuation vanishes before bash reads words: `~` may follow.
                        None | Some(b'\n') => tilde_expands = at_tilde,
                        Some(c) => v.push(c),
                    }
                }
                Some(b'$') if self.peek_at(1) == Some(b'\'') => {
                    let opened = self.line;
                    self.pos += 2;
                    self.ansi_c_quoted(&mut v, opened)?;
                }
                Some(b'$') if self.peek_at(1) == Some(b'"') => {
                    // `$"..."` is translated through the locale's message catalogue; lookout,
                    // like bash without one, reads it as "...".
                    let opened = self.line;
                    self.pos += 2;
                    self.double_quoted(&mut v, opened)?;
                }
                Some(b'$') => self.dollar(&mut v)?,
                Some(b'`') => return Err(Bad("command substitution is not supported".into())),
                Some(c @ (b'(' | b')' | b'<' | b'>' | b'|' | b'&')) => {
                    return Err(Bad(format!("unsupported shell syntax `{}` (quote the value)", char::from(c))));
                }
                Some(b'~') if at_tilde => {
                    return Err(Bad("tilde expansion is not supported (write the path; or quote the ~)".into()));
                }
                Some(c) => {
                    self.pos += 1;
                    v.push(c);
                    tilde_expands = c == b':';
                }
            }
        }
    }

    fn double_quoted(&mut self, v: &mut Vec<u8>, opened: usize) -> Result<(), Bad> {
        loop {
            match self.peek() {
                None => return Err(Bad(format!("unterminated \" quote opened on line {opened}"))),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.peek_at(1) {
                    Some(c @ (b'$' | b'`' | b'"' | b'\\')) => {
                        self.pos += 2;
                        v.push(c);
                    }
                    Some(b'\n') => {
                        self.pos += 1;
                        self.bump();
                    }
                    _ => {
                        self.pos += 1;
                        v.push(b'\\');
                    }
                },
                Some(b'$') => self.dollar(v)?,
                Some(b'`') => return Err(Bad("command substitution is not supported".into())),
                Some(_) => {
                    if let Some(c) = self.bump() {
                        v.push(c);
                    }
                }
            }
        }
    }

    /// The inside of `$'...'` (after the opening quote), read as bash does: first the closing
    /// quote is found (a backslash hides the byte after it, so `\'` does not close), then the
    /// escapes are decoded. A NUL (`\0`, `\x00`) ends the string there, as in bash.
    fn ansi_c_quoted(&mut self, v: &mut Vec<u8>, opened: usize) -> Result<(), Bad> {
        let start = self.pos;
        loop {
            match self.bump() {
                None => return Err(Bad(format!("unterminated $' quote opened on line {opened}"))),
                Some(b'\'') => break,
                Some(b'\\') => {
                    self.bump();
                }
                Some(_) => {}
            }
        }
        let s = ansi_c_decode(&self.b[start..self.pos - 1])?;
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        v.extend_from_slice(&s[..end]);
        Ok(())
    }

    /// `$NAME`, `${NAME}` from earlier assignments; a `$` not followed by a name is literal.
    fn dollar(&mut self, v: &mut Vec<u8>) -> Result<(), Bad> {
        self.pos += 1; // '$'
        // bash joins lines before it reads `$NAME`: `$\<newline>A` is `$A`. Not worth reading.
        let continued = |p: &Self, at: usize| p.peek_at(at) == Some(b'\\') && p.peek_at(at + 1) == Some(b'\n');
        if continued(self, 0) {
            return Err(Bad("a line continuation right after `$` is not supported".into()));
        }
        let name = match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let name = self.name().ok_or_else(|| Bad("unsupported ${...} expansion".into()))?;
                if self.peek() != Some(b'}') {
                    return Err(Bad(format!("unsupported ${{{name}...}} expansion (only ${{NAME}} is read)")));
                }
                self.pos += 1;
                name
            }
            Some(b'(') => return Err(Bad("command substitution is not supported".into())),
            Some(b'[') => return Err(Bad("arithmetic expansion $[...] is not supported".into())),
            Some(c) if c.is_ascii_digit() || matches!(c, b'?' | b'$' | b'!' | b'@' | b'*' | b'#' | b'-') => {
                return Err(Bad(format!("special parameter ${} is not supported", char::from(c))));
            }
            _ => match self.name() {
                Some(_) if continued(self, 0) && self.peek_at(2).is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') => {
                    return Err(Bad("a line continuation inside a $NAME is not supported".into()));
                }
                Some(name) => name,
                None => {
                    v.push(b'$');
                    return Ok(());
                }
            },
        };
        match self.out.get(&name) {
            Some(a) => {
                v.extend_from_slice(&a.value);
                Ok(())
            }
            None => Err(Bad(format!("${name} is not assigned earlier in this file (lookout does not read the environment)"))),
        }
    }
}

/// Decodes the escapes of the inside of a `$'...'` as bash does (`\n`, `\xHH`, octal, `\cX`,
/// unknown escapes kept as written); `\u` and `\U` are refused (their meaning depends on the
/// locale bash runs in).
fn ansi_c_decode(b: &[u8]) -> Result<Vec<u8>, Bad> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'e' | b'E' => Some(0x1b),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' | b'\'' | b'"' | b'?' => Some(c),
            _ => None,
        };
        if let Some(x) = simple {
            out.push(x);
            continue;
        }
        match c {
            b'0'..=b'7' => {
                let mut n = u32::from(c - b'0');
                for _ in 0..2 {
                    match b.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            n = n * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((n & 0xff) as u8);
            }
            b'x' => {
                let digits = b[i..].iter().take(2).take_while(|d| d.is_ascii_hexdigit()).count();
                match digits {
                    0 => out.extend_from_slice(b"\\x"),
                    _ => {
                        let n = b[i..i + digits].iter().fold(0u32, |n, d| n * 16 + char::from(*d).to_digit(16).unwrap_or(0));
                        out.push(n as u8);
                        i += digits;
                    }
                }
            }
            b'c' => match b.get(i) {
                None => out.extend_from_slice(b"\\c"),
                Some(&x) if x.is_ascii() => {
                    i += 1;
                    // bash reads `\c\\` as control-backslash, taking both backslashes.
                    if x == b'\\' && b.get(i) == Some(&b'\\') {
                        i += 1;
                    }
                    out.push(if x == b'?' { 0x7f } else { x & 0x1f });
                }
                Some(_) => return Err(Bad("unsupported \\c escape of a non-ASCII character in $'...'".into())),
            },
            b'u' | b'U' => {
                return Err(Bad(format!(
                    "\\{} escapes in $'...' depend on the locale bash runs in; write the character itself",
                    char::from(c)
                )));
            }
            // bash keeps an unknown escape as written (a backslash-newline too).
            _ => out.extend_from_slice(&[b'\\', c]),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        let p = parse(text);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.assignments.len(), 1, "{:?}", p.assignments);
        String::from_utf8(p.assignments[0].value.clone()).unwrap()
    }

    #[test]
    fn reads_the_three_quoting_styles() {
        assert_eq!(one("A=plain\n"), "plain");
        assert_eq!(one("A=\"with space\""), "with space");
        assert_eq!(one("A='it''s'"), "its");
        assert_eq!(one("A='single \"quoted\" $x'"), "single \"quoted\" $x");
        assert_eq!(one("A=\"a\"'b'c"), "abc");
        assert_eq!(one("A="), "");
        assert_eq!(one("A=\"\""), "");
    }

    #[test]
    fn escapes_follow_bash() {
        assert_eq!(one(r#"A="\d+ \$HOME \" \\ \`""#), r#"\d+ $HOME " \ `"#);
        assert_eq!(one(r"A=a\ b"), "a b");
        assert_eq!(one("A=\"one\\\ntwo\""), "onetwo");
        assert_eq!(one("A=\"line1\nline2\""), "line1\nline2");
        assert_eq!(one(r#"A="^ERROR$""#), "^ERROR$");
        assert_eq!(one(r#"A="cost: $ 5""#), "cost: $ 5");
    }

    #[test]
    fn comments_blank_lines_and_export() {
        let p = parse("# header\n\n  export A=1 # trailing\nB=x#y\nexport C\nD=2; E='3'\n");
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        let got: Vec<_> = p.assignments.iter().map(|a| (a.key.as_str(), a.text().unwrap(), a.line)).collect();
        assert_eq!(got, vec![("A", "1", 3), ("B", "x#y", 4), ("D", "2", 6), ("E", "3", 6)]);
    }

    #[test]
    fn expands_earlier_assignments_only() {
        let p = parse("DIR=/var/log\nFILE=\"$DIR/app.log\"\nF2=${DIR}/x\nBAD=$NOPE\nLAST=ok\n");
        assert_eq!(p.get("FILE").and_then(|a| a.text()), Some("/var/log/app.log"));
        assert_eq!(p.get("F2").and_then(|a| a.text()), Some("/var/log/x"));
        assert!(p.get("BAD").is_none());
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].line, 4);
        assert!(p.diagnostics[0].message.contains("$NOPE"), "{}", p.diagnostics[0]);
        assert_eq!(p.get("LAST").and_then(|a| a.text()), Some("ok"));
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let p = parse("A=1\necho hi\nB=$(rm -rf /)\nC=`id`\nD=two words\nE=\"unterminated\nF=2\n");
        let lines: Vec<usize> = p.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6], "{:?}", p.diagnostics);
        assert_eq!(p.get("A").and_then(|a| a.text()), Some("1"));
        assert!(p.get("B").is_none() && p.get("C").is_none() && p.get("D").is_none());
        // The unterminated quote swallows the rest of the file, as in bash.
        assert!(p.get("F").is_none());
    }

    #[test]
    fn last_assignment_wins() {
        let p = parse("A=1\nA=2\n");
        assert_eq!(p.get("A").map(|a| (a.text().unwrap(), a.line)), Some(("2", 2)));
    }

    #[test]
    fn quote_round_trips() {
        for v in [
            "ERROR",
            "5",
            "",
            "with space",
            r"\d+ [a-z]* \\ end\",
            "a\"b$c`d",
            "'single'",
            ".*container die.*image=crasher-docker-image",
            "@docker events",
            "tab\there\nnewline",
            "ünïcödé",
            r"\$",
        ] {
            let text = format!("K={}\n", quote(v.as_bytes()));
            let p = parse(&text);
            assert!(p.diagnostics.is_empty(), "{text:?}: {:?}", p.diagnostics);
            assert_eq!(p.get("K").and_then(|a| a.text()), Some(v), "{text:?}");
        }
        assert_eq!(quote(b"16"), "16");
        assert_eq!(quote(b"ERROR"), "\"ERROR\"");
        assert_eq!(quote(br"\d+"), r#""\d+""#);
    }

    fn bytes(text: &[u8]) -> Vec<u8> {
        let p = parse(text);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.assignments.len(), 1, "{:?}", p.assignments);
        p.assignments[0].value.clone()
    }

    /// Each expectation was read from bash 5.2 (`source FILE; printf %s "$K" | od`); the test
    /// `fuzz_shell` compares with the bash on the machine.
    #[test]
    fn ansi_c_quotes_as_bash_reads_them() {
        for (text, want) in [
            (&br"K=$'a\x00b'c"[..], &b"ac"[..]),
            (br"K=$'\xff\xfe'", b"\xff\xfe"),
            (br"K=$'\x4'1", b"\x041"),
            (br"K=$'\1234'", b"S4"),
            (br"K=$'\cz\c?\c['", b"\x1a\x7f\x1b"),
            (br"K=$'\xfg'", b"\x0fg"),
            (br"K=$'\c\\'", b"\x1c"),
            (br"K=$'\x'", br"\x"),
            (br"K=$'\777'", b"\xff"),
            (br"K=$'\400x'", b""),
            (br"K=$'\0'x", b"x"),
            (br"K=$'\c'", br"\c"),
            (br"K=$'\ca\cA\c1'", b"\x01\x01\x11"),
            (b"K=$'a\\\nb'", b"a\\\nb"),
            (br#"K=$'\?\"'"#, b"?\""),
            (br"K=$'\e\q\''", b"\x1b\\q'"),
            (br"K=$'\a\b\f\n\r\t\v'", b"\x07\x08\x0c\n\r\t\x0b"),
            (br#"K=$"tr""#, b"tr"),
            (br#"K="$'x'""#, b"$'x'"),
            (br#"K="/var/log/"$'\xff'".log""#, b"/var/log/\xff.log"),
            (b"K=raw\xff\xfebytes", b"raw\xff\xfebytes"),
            (b"K=a~:'~'\\~\"~\"", b"a~:~~~"),
            (br"K=$'\c\''", b"\x1c'"),
            (br"K=$'a\'b'", b"a'b"),
            (br"K=$'\c\\\\x'", b"\x1c\\x"),
        ] {
            assert_eq!(bytes(text), want, "{}", String::from_utf8_lossy(text));
        }
        for text in [&b"K=~"[..], b"K=~/x", b"K=/a:~/b", b"K=~root", b"K=\\\n~"] {
            assert!(parse(text).diagnostics[0].message.contains("tilde"), "{}", String::from_utf8_lossy(text));
        }
        // bash joins lines before it reads `$NAME`; lookout refuses what that would change.
        for text in [&b"K=$\\\nA"[..], b"A=1\nK=$A\\\nB", b"A=1\nK=\"$\\\nA\"", b"K=$[1]"] {
            assert!(!parse(text).diagnostics.is_empty(), "{}", String::from_utf8_lossy(text));
        }
        assert!(parse(b";\nA=1 ; ;\n").diagnostics.iter().all(|d| d.message.contains("`;` without a statement")));
        assert_eq!(parse(b"A=1;\nB=2 ;# c\n").diagnostics, vec![]);
        let p = parse(br"K=$'\u00e9'");
        assert!(p.diagnostics[0].message.contains("locale"), "{:?}", p.diagnostics);
        assert!(parse(b"K=$'open\nL=1\n").diagnostics[0].message.contains("unterminated $' quote opened on line 1"));
    }

    #[test]
    fn nul_bytes_are_dropped_as_bash_drops_them() {
        let p = parse(b"A=a\0b\nB=\"x\0y\"\nC=ok\n");
        let got: Vec<_> = p.assignments.iter().map(|a| (a.key.as_str(), a.text().unwrap(), a.line)).collect();
        assert_eq!(got, vec![("A", "ab", 1), ("B", "xy", 2), ("C", "ok", 3)]);
    }

    #[test]
    fn quote_writes_bytes_bash_mangles_or_cannot_read_as_ansi_c() {
        assert_eq!(quote(b"/var/log/\xff\xfe.log"), r#""/var/log/"$'\xff\xfe'".log""#);
        assert_eq!(quote(b"\xff"), r"$'\xff'");
        assert_eq!(quote(b"\\\x7f\x7f"), r#""\\"$'\x7f\x7f'"#);
        assert_eq!(quote(b"a\x01"), r#""a"$'\x01'"#);
        assert_eq!(quote(b""), r#""""#);
        for v in [&b"/var/log/\xff\xfe.log"[..], b"\\\x7f\x7f", b"\\\x01\\", b"\xc3", b"12\xff34", b"\\\xff\\", b"$\x7f`\"\\"] {
            let text = format!("K={}\n", quote(v));
            assert_eq!(bytes(text.as_bytes()), v, "{text:?}");
        }
    }
}
