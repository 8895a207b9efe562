//! The spool's cost on the reactor thread: appending an alert (a small write), the `fdatasync`
//! of `ALERT_STORE_FSYNC=always` (one per reactor turn with alerts), and reading a full spool
//! back at start.
//!
//! `cargo bench --bench spool -- [DIR] [ALERTS]` (DIR on the disk to measure; default
//! `target/bench-spool`; ALERTS default 1000, ~1.6 KB each: a log alert with context).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lookout::time::Wall;
use lookout::uplink::spool::{self, Fsync};

fn alert(i: usize) -> Vec<u8> {
    let ctx: Vec<String> = (0..10)
        .map(|l| {
            format!(
                r#"{{"line_number":{},"data":"2026-11-29T10:00:00Z app[123]: INFO request {l} served in 12 ms from 10.0.0.{l}"}}"#,
                i * 10 + l
            )
        })
        .collect();
    format!(
        r#"{{"name":"Log file contains ERROR","level":"CRITICAL","timestamp":"2026-11-29T10:00:00.000Z","subject":{{"name":"app{}","type":"log","status":"LOGCONTAINS","details":{{"description":"ERROR present in /var/log/app.log","lines_before":[{}],"line_matching":{{"line_number":{i},"data":"ERROR crashed"}}}}}}}}"#,
        i % 50,
        ctx.join(",")
    )
    .into_bytes()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn run(dir: &PathBuf, fsync: Fsync, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let _ = std::fs::remove_dir_all(dir);
    let loaded = spool::load(dir, fsync, Wall::default());
    let mut w = loaded.writer;
    let (mut appends, mut syncs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let payload = alert(i);
        let (key, label) = spool::key_and_label("Log file contains ERROR", "CRITICAL", "app");
        let t = Instant::now();
        let (_, written) = w.append(&payload, key, label, Wall::default());
        appends.push(t.elapsed());
        assert!(written.is_ok(), "{written:?}");
        let t = Instant::now();
        w.sync().expect("sync");
        syncs.push(t.elapsed());
    }
    (appends, syncs)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let dir = args.first().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/bench-spool"));
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    println!("spool in {} ({} alerts of {} bytes)", dir.display(), n, alert(0).len());
    println!("| ALERT_STORE_FSYNC | append p50 | append p99 | fdatasync p50 | fdatasync p99 | per alert, total |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, fsync) in [("never", Fsync::Never), ("always", Fsync::Always)] {
        let t = Instant::now();
        let (mut a, mut s) = run(&dir, fsync, n);
        let per = t.elapsed() / n as u32;
        println!(
            "| {name} | {:?} | {:?} | {:?} | {:?} | {:?} |",
            percentile(&mut a, 0.5),
            percentile(&mut a, 0.99),
            percentile(&mut s, 0.5),
            percentile(&mut s, 0.99),
            per
        );
    }
    let t = Instant::now();
    let loaded = spool::load(&dir, Fsync::Never, Wall::default());
    println!("load at start: {} alerts waiting, read back in {:?}", loaded.index.len(), t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}
