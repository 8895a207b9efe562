//! Property-based fuzzing of the shell-assignment reader and writer (`config::shell`), with the
//! real bash as the reference:
//! - any bytes: `parse` never panics and every line it names is in the file;
//! - any value (bytes, no NUL): what `quote` writes (and so `create`) parses back to the value,
//!   and bash `source`s it back to the same bytes;
//! - text made of shell syntax (quotes of every kind, escapes, `$NAME`, `~`, bytes that are not
//!   UTF-8): whenever `parse` accepts a file without a word of complaint, bash gives every
//!   variable the same value. What lookout cannot read as bash would, it must refuse.
//!
//! Deliberate differences, kept out of the generated syntax: a carriage return ends a value
//! (files edited on Windows work; bash would keep it), and bash's own mangling of bytes 0x01 and
//! 0x7f after a backslash inside double quotes (which `quote` avoids by writing them as
//! `$'\xHH'`). Commands, redirections and substitutions are not generated: bash would run them.
//!
//! Cases: a modest number by default so `cargo test` stays fast; more with
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz_shell`.

use std::path::Path;
use std::process::Command;

use lookout::config::check::render;
use lookout::config::shell::{parse, quote};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The default case count, or `PROPTEST_CASES`.
fn cases(default: u32) -> Config {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config { cases: n, failure_persistence: None, ..Config::default() }
}

/// Runs bash on `file` and prints, for each variable, whether it is set and its value.
fn bash_values(file: &Path, vars: &[String]) -> Option<Vec<Option<Vec<u8>>>> {
    let script: String = vars.iter().map(|v| format!("printf '%s\\0%s\\0' \"${{{v}+1}}\" \"${v}\"; ")).collect();
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c"])
        .arg(format!("source \"$1\" || exit 99; {script}"))
        .arg("bash")
        .arg(file)
        .env_clear()
        .current_dir(file.parent().unwrap())
        .output()
        .expect("bash");
    if !out.status.success() || !out.stderr.is_empty() {
        return None;
    }
    let mut fields = out.stdout.split(|&b| b == 0);
    let mut values = Vec::new();
    for _ in vars {
        let (set, value) = (fields.next()?, fields.next()?);
        values.push((set == b"1").then(|| value.to_vec()));
    }
    Some(values)
}

struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lookout-fuzz-shell-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Any value a command-line argument can carry: bytes without NUL, biased towards the ones
/// quoting has to care about.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => any::<u8>().prop_filter("no NUL", |b| *b != 0),
        4 => prop::sample::select(b"\\\"'$`\n\t\x01\x7f ~:#;!{}()*?[]\xff\xc3\xa9".to_vec()),
        2 => prop::sample::select(b"aZ09_-./@".to_vec()),
    ];
    prop::collection::vec(byte, 0..24)
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn parse_never_panics_and_names_lines_in_the_file(text in prop::collection::vec(any::<u8>(), 0..300)) {
        let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
        let p = parse(&text);
        for d in &p.diagnostics {
            prop_assert!(d.line >= 1 && d.line <= lines, "{d}");
            prop_assert!(d.message.len() < 300, "{d}");
        }
        for a in &p.assignments {
            prop_assert!(a.line >= 1 && a.line <= lines);
        }
    }

    #[test]
    fn shell_like_text_never_panics(text in prop::collection::vec(prop::sample::select(
        b"K=A \"'$`\\\n\t{}()#;~:\x01\x7f\xff\r".to_vec()), 0..200)) {
        let _ = parse(&text);
    }

    #[test]
    fn quoted_values_parse_back(v in value()) {
        let text = render(&[("K", v.as_slice()), ("L", b"after")]);
        let p = parse(text.as_bytes());
        prop_assert!(p.diagnostics.is_empty(), "{text:?}: {:?}", p.diagnostics);
        prop_assert_eq!(&p.get("K").unwrap().value, &v, "{:?}", text);
        prop_assert_eq!(&p.get("L").unwrap().value, b"after");
    }
}

proptest! {
    #![proptest_config(cases(32))]

    /// A batch of values per bash run keeps this fast.
    #[test]
    fn bash_reads_quoted_values_back(values in prop::collection::vec(value(), 1..16)) {
        let dir = Scratch::new("quoted");
        let vars: Vec<String> = (0..values.len()).map(|i| format!("K{i}")).collect();
        let pairs: Vec<(&str, &Vec<u8>)> = vars.iter().map(String::as_str).zip(&values).collect();
        let file = dir.0.join("check.sh");
        std::fs::write(&file, render(&pairs)).unwrap();
        let got = bash_values(&file, &vars).expect("bash sources what create writes");
        for (v, g) in values.iter().zip(got) {
            prop_assert_eq!(Some(v.clone()), g, "{}", quote(v));
        }
    }
}

/// A piece of shell syntax for assignments: quotes of every kind, escapes, expansions.
fn token() -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(vec![
        &b"a"[..],
        b"Z",
        b"0",
        b"_",
        b"-",
        b"/",
        b".",
        b"@",
        b"%",
        b"=",
        b"*",
        b"?",
        b"[",
        b"]",
        b"!",
        b"{",
        b"}",
        b"#",
        b";",
        b"~",
        b":",
        b" ",
        b"\t",
        b"\n",
        b"'",
        b"\"",
        b"\\",
        b"$",
        b"$'",
        b"$\"",
        b"$A",
        b"${A}",
        b"$K",
        b"$1",
        b"${A",
        b"\\n",
        b"\\x4",
        b"\\x41",
        b"\\xff",
        b"\\0",
        b"\\101",
        b"\\c",
        b"\\ca",
        b"\\e",
        b"\\u",
        b"\\'",
        b"\\\"",
        b"\\\\",
        b"\\\n",
        b"\xff",
        b"\xc3\xa9",
        b"export ",
        b"A=",
        b"K=",
    ])
}

proptest! {
    #![proptest_config(cases(256))]

    /// What lookout accepts, it reads as bash does.
    #[test]
    fn accepted_text_means_what_bash_makes_of_it(
        a in prop::collection::vec(token(), 0..8),
        k in prop::collection::vec(token(), 0..8),
    ) {
        let mut text = b"A=".to_vec();
        text.extend(a.concat());
        text.extend_from_slice(b"\nK=");
        text.extend(k.concat());
        text.push(b'\n');
        let p = parse(&text);
        if !p.diagnostics.is_empty() {
            return Ok(()); // refused: nothing to compare
        }
        let dir = Scratch::new("accepted");
        let file = dir.0.join("check.sh");
        std::fs::write(&file, &text).unwrap();
        let vars = vec!["A".to_string(), "K".to_string()];
        let got = bash_values(&file, &vars);
        let ours = vec![p.get("A").map(|a| a.value.clone()), p.get("K").map(|a| a.value.clone())];
        prop_assert_eq!(got, Some(ours), "{:?}", String::from_utf8_lossy(&text));
    }
}

/// The bytes bash mishandles after a backslash inside double quotes: a check file `create`
/// writes still reads back exactly (issue 11, defect 12).
#[test]
fn backslash_del_and_backslash_0x01_read_back_through_bash() {
    let dir = Scratch::new("del");
    let values: Vec<&[u8]> =
        vec![b"\\\x7f\x7f", b"\\\x7f\x01", b"\\\x7f$", b"\\\x01\\", b"\\\x01\x7f", b"`\\\x7f", b"\x7f\\\x7f", b"a\\\x7fb"];
    let vars: Vec<String> = (0..values.len()).map(|i| format!("K{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = vars.iter().map(String::as_str).zip(values.iter().copied()).collect();
    let file = dir.0.join("check.sh");
    std::fs::write(&file, render(&pairs)).unwrap();
    let got = bash_values(&file, &vars).unwrap();
    for (v, g) in values.iter().zip(got) {
        assert_eq!(g.as_deref(), Some(*v), "{}", quote(v));
    }
}
