//! A safe reader and writer for the bash-assignment files Mender Monitor uses (check files and
//! `config.sh`).
//!
//! The original sources these files with bash; lookout reads them as data and never executes
//! anything. Accepted: `KEY=value`, `KEY="value"`, `KEY='value'`, concatenations of those
//! (`KEY="a"'b'c`), backslash escapes as bash reads them, `$NAME` / `${NAME}` expanded from
//! assignments earlier in the same file, `export KEY=...`, `#` comments, blank lines, several
//! assignments on one line separated by `;`, and double- or single-quoted values spanning lines.
//! Everything else (command substitution, unknown variables, commands) is reported with its line
//! number and skipped; the rest of the file is still read.

use std::fmt;

/// One `KEY=value` found in a file, with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The variable name.
    pub key: String,
    /// The value after quote removal, escapes and expansion.
    pub value: String,
    /// 1-based line number of the assignment.
    pub line: usize,
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
pub fn parse(text: &str) -> Parsed {
    let mut p = Parser { chars: text.chars().collect(), pos: 0, line: 1, out: Parsed::default() };
    p.run();
    p.out
}

/// Quotes `value` so that bash (and [`parse`]) read it back unchanged, in the style Mender's
/// `create` writes: plain numbers and simple words bare, everything else in double quotes with
/// only the characters bash treats specially escaped.
pub fn quote(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    let chars: Vec<char> = value.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\\' => {
                // Inside double quotes bash keeps a backslash unless it precedes one of
                // `$ \` " \ newline`; escape only where it would otherwise be consumed.
                let next = chars.get(i + 1).copied();
                if matches!(next, None | Some('$' | '`' | '"' | '\\' | '\n')) {
                    out.push_str("\\\\");
                } else {
                    out.push('\\');
                }
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    out: Parsed,
}

/// Why a statement could not be read; the parser skips to the end of the line.
struct Bad(String);

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    fn skip_to_eol(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.pos += 1;
        }
    }

    fn run(&mut self) {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return,
                Some('\n' | ';') => {
                    self.bump();
                }
                Some('#') => self.skip_to_eol(),
                Some(_) => {
                    let line = self.line;
                    if let Err(Bad(message)) = self.statement(line) {
                        self.out.diagnostics.push(Diagnostic { line, message });
                        self.skip_to_eol();
                    }
                }
            }
        }
    }

    fn name(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        Some(self.chars[start..self.pos].iter().collect())
    }

    fn statement(&mut self, line: usize) -> Result<(), Bad> {
        let start = self.pos;
        let mut key = self.name();
        if key.as_deref() == Some("export") && matches!(self.peek(), Some(' ' | '\t')) {
            self.skip_blanks();
            key = self.name();
            if key.is_some() && matches!(self.peek(), None | Some(' ' | '\t' | '\r' | '\n' | ';' | '#')) {
                // `export KEY` without a value: nothing to assign.
                return self.end_of_statement();
            }
        }
        let Some(key) = key.filter(|_| self.peek() == Some('=')) else {
            self.pos = start;
            let mut word = String::new();
            while let Some(c) = self.peek().filter(|c| !c.is_whitespace()) {
                word.push(c);
                self.pos += 1;
                if word.chars().count() >= 40 {
                    break;
                }
            }
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
            None | Some('\n' | ';') => Ok(()),
            Some('#') => {
                self.skip_to_eol();
                Ok(())
            }
            Some(c) => Err(Bad(format!("unexpected `{c}` after the value (quote values that contain spaces)"))),
        }
    }

    fn value(&mut self) -> Result<String, Bad> {
        let mut v = String::new();
        loop {
            match self.peek() {
                None | Some(' ' | '\t' | '\r' | '\n' | ';') => return Ok(v),
                Some('"') => {
                    let opened = self.line;
                    self.pos += 1;
                    self.double_quoted(&mut v, opened)?;
                }
                Some('\'') => {
                    let opened = self.line;
                    self.pos += 1;
                    loop {
                        match self.bump() {
                            None => return Err(Bad(format!("unterminated ' quote opened on line {opened}"))),
                            Some('\'') => break,
                            Some(c) => v.push(c),
                        }
                    }
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.bump() {
                        None => {}
                        Some('\n') => {} // line continuation
                        Some(c) => v.push(c),
                    }
                }
                Some('$') => self.dollar(&mut v)?,
                Some('`') => return Err(Bad("command substitution is not supported".into())),
                Some(c @ ('(' | ')' | '<' | '>' | '|' | '&')) => {
                    return Err(Bad(format!("unsupported shell syntax `{c}` (quote the value)")));
                }
                Some(c) => {
                    self.pos += 1;
                    v.push(c);
                }
            }
        }
    }

    fn double_quoted(&mut self, v: &mut String, opened: usize) -> Result<(), Bad> {
        loop {
            match self.peek() {
                None => return Err(Bad(format!("unterminated \" quote opened on line {opened}"))),
                Some('"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('\\') => match self.peek_at(1) {
                    Some(c @ ('$' | '`' | '"' | '\\')) => {
                        self.pos += 2;
                        v.push(c);
                    }
                    Some('\n') => {
                        self.pos += 1;
                        self.bump();
                    }
                    _ => {
                        self.pos += 1;
                        v.push('\\');
                    }
                },
                Some('$') => self.dollar(v)?,
                Some('`') => return Err(Bad("command substitution is not supported".into())),
                Some(_) => {
                    if let Some(c) = self.bump() {
                        v.push(c);
                    }
                }
            }
        }
    }

    /// `$NAME`, `${NAME}` from earlier assignments; a `$` not followed by a name is literal.
    fn dollar(&mut self, v: &mut String) -> Result<(), Bad> {
        self.pos += 1; // '$'
        let name = match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name().ok_or_else(|| Bad("unsupported ${...} expansion".into()))?;
                if self.peek() != Some('}') {
                    return Err(Bad(format!("unsupported ${{{name}...}} expansion (only ${{NAME}} is read)")));
                }
                self.pos += 1;
                name
            }
            Some('(') => return Err(Bad("command substitution is not supported".into())),
            Some(c) if c.is_ascii_digit() || matches!(c, '?' | '$' | '!' | '@' | '*' | '#' | '-') => {
                return Err(Bad(format!("special parameter ${c} is not supported")));
            }
            _ => match self.name() {
                Some(name) => name,
                None => {
                    v.push('$');
                    return Ok(());
                }
            },
        };
        match self.out.get(&name) {
            Some(a) => {
                v.push_str(&a.value);
                Ok(())
            }
            None => Err(Bad(format!("${name} is not assigned earlier in this file (lookout does not read the environment)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> String {
        let p = parse(text);
        assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
        assert_eq!(p.assignments.len(), 1, "{:?}", p.assignments);
        p.assignments[0].value.clone()
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
        let got: Vec<_> = p.assignments.iter().map(|a| (a.key.as_str(), a.value.as_str(), a.line)).collect();
        assert_eq!(got, vec![("A", "1", 3), ("B", "x#y", 4), ("D", "2", 6), ("E", "3", 6)]);
    }

    #[test]
    fn expands_earlier_assignments_only() {
        let p = parse("DIR=/var/log\nFILE=\"$DIR/app.log\"\nF2=${DIR}/x\nBAD=$NOPE\nLAST=ok\n");
        assert_eq!(p.get("FILE").map(|a| a.value.as_str()), Some("/var/log/app.log"));
        assert_eq!(p.get("F2").map(|a| a.value.as_str()), Some("/var/log/x"));
        assert!(p.get("BAD").is_none());
        assert_eq!(p.diagnostics.len(), 1);
        assert_eq!(p.diagnostics[0].line, 4);
        assert!(p.diagnostics[0].message.contains("$NOPE"), "{}", p.diagnostics[0]);
        assert_eq!(p.get("LAST").map(|a| a.value.as_str()), Some("ok"));
    }

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let p = parse("A=1\necho hi\nB=$(rm -rf /)\nC=`id`\nD=two words\nE=\"unterminated\nF=2\n");
        let lines: Vec<usize> = p.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6], "{:?}", p.diagnostics);
        assert_eq!(p.get("A").map(|a| a.value.as_str()), Some("1"));
        assert!(p.get("B").is_none() && p.get("C").is_none() && p.get("D").is_none());
        // The unterminated quote swallows the rest of the file, as in bash.
        assert!(p.get("F").is_none());
    }

    #[test]
    fn last_assignment_wins() {
        let p = parse("A=1\nA=2\n");
        assert_eq!(p.get("A").map(|a| (a.value.as_str(), a.line)), Some(("2", 2)));
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
            let text = format!("K={}\n", quote(v));
            let p = parse(&text);
            assert!(p.diagnostics.is_empty(), "{text:?}: {:?}", p.diagnostics);
            assert_eq!(p.get("K").map(|a| a.value.as_str()), Some(v), "{text:?}");
        }
        assert_eq!(quote("16"), "16");
        assert_eq!(quote("ERROR"), "\"ERROR\"");
        assert_eq!(quote(r"\d+"), r#""\d+""#);
    }
}
