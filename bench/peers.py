#!/usr/bin/env python3
"""lookout beside its peers, the measuring half of bench/peers.sh.

For each peer — lookout (`run --stdout`), Monit (`set daemon 2`, `check file ... if content =`),
and one `tail -n0 -F FILE | grep --line-buffered` pipeline per file — with CHECKS (100) files
watched for `ERROR crashed`, each file holding 100 realistic lines at the start:
  - idle wake-ups: voluntary + involuntary context switches of every thread of every process
    of the peer (/proc/PID/task/*/status) over IDLE_S seconds, scaled to a minute, from
    SETTLE_S seconds after the peer has read every file (lookout saves its read positions up to
    STATE_SAVE_INTERVAL_S, 5 s, after reading: start-up work, not idle);
  - write -> reaction: SAMPLES matching lines, one per file, a random 0.05-2.05 s apart (so
    that a write falls at a random moment of Monit's 2 s cycle); from just
    before the write to the peer's reaction (lookout: the alert line on its stdout; Monit: a
    timestamp its `exec` action writes; tail|grep: the line out of grep); p50 and max;
  - process exit -> reaction: SAMPLES times, a watched `sleep` (pid in a pid file) is killed
    and reaped, a random 0.05-2.05 s after the peer saw it running; until lookout's CRITICAL
    (a sysV service check, flapping off) or the timestamp of Monit's `exec` (`check process
    ... with pidfile ... if does not exist`); then a new one is started and its pid file
    written, and the peer's OK (Monit: `else if succeeded`) is awaited;
  - memory: VmRSS and PSS summed over the peer's processes, after the samples;
  - CPU per GiB followed: bench/follow.py's followers for lookout and tail|grep; Monit: its own
    CPU while the writer appends FOLLOW_MIB of the log to one checked file, then the match.
Usage: peers.py LOOKOUT_BIN WORKDIR FOLLOWDIR FOLLOW_MIB SAMPLES IDLE_S [SCAN_TABLE]
Prints one Markdown table; SCAN_TABLE is bench/scan.sh's output, for the catch-up column.
"""
import os
import random
import signal
import subprocess
import sys
import time

import follow

CHECKS = 100
PATTERN = "ERROR crashed"
LINE = "ERROR crashed: segfault in worker"


def task_status_sum(pids, keys):
    """Sum of the given /proc/PID/task/*/status counters over every thread of every pid."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        if k in keys:
                            total += int(v.split()[0])
            except (OSError, ValueError):
                pass  # a thread gone meanwhile
    return total


SETTLE_S = 6  # before an idle window: past lookout's first state save (STATE_SAVE_INTERVAL_S=5)


def wakeups_per_minute(pids, seconds):
    """Context switches of all the peer's threads over `seconds` once settled, per minute."""
    keys = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
    time.sleep(SETTLE_S)  # the start-up's own work (a first state save, first cycles) is not idle
    before = task_status_sum(pids, keys)
    time.sleep(seconds)  # the measured interval itself, not a synchronisation
    return (task_status_sum(pids, keys) - before) * 60 / seconds


def memory_kib(pids):
    """(VmRSS, Pss) summed over processes: RSS counts shared pages (libc) once per process, PSS
    shares them out, so the sum of PSS is what the processes cost together."""
    rss = pss = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            rss += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    return rss, pss


def make_files(fdir, name):
    """CHECKS files of 100 realistic lines each (none matching)."""
    d = os.path.join(fdir, name)
    os.makedirs(d)
    lines = "".join(follow.log_line(f"INFO request id={i * 7919} path=/api/v1/items status=200 ms={i}") + "\n"
                    for i in range(100))
    paths = []
    for i in range(CHECKS):
        p = os.path.join(d, f"app{i}.log")
        with open(p, "w") as f:
            f.write(lines)
        paths.append(p)
    return paths


def sample(paths, samples, reaction):
    """Writes one match per file in turn; reaction(i, t_write_ns) -> the reaction's time (ns)."""
    lat = []
    for i in range(samples):
        t = time.time_ns()
        with open(paths[i % len(paths)], "a") as f:
            f.write(follow.log_line(f"ERROR crashed: seq={i} segfault in worker") + "\n")
        lat.append((reaction(i, t) - t) / 1e6)
        time.sleep(random.uniform(0.05, 2.05))  # a random phase of Monit's 2 s cycle
    lat.sort()
    return lat[len(lat) // 2], lat[-1]


def read_line_until(lines, want):
    """Lines (follow.Lines) until one holds `want`: the time it arrived (ns)."""
    while want not in lines.readline():
        pass
    return time.time_ns()


def peer_lookout(binary, work, fdir, samples, idle_s):
    paths = make_files(fdir, "lookout")
    root = follow.lookout_root(work, "peers-root")
    for i, p in enumerate(paths):
        follow.add_check(binary, root, f"app{i}", PATTERN, p)
    agent = follow.start_agent(binary, root, CHECKS)
    try:
        status = os.path.join(root, "status.txt")

        def all_read():  # every file read to its end (the status lists each check's lines)
            with open(status, "w") as out:
                subprocess.run([binary, "--root", root, "status"], stdout=out, stderr=subprocess.DEVNULL)
            return open(status).read().count(", lines 100") >= CHECKS

        follow.wait_until("lookout to read every file", all_read)
        wake = wakeups_per_minute([agent.pid], idle_s)
        out = follow.Lines(agent.stdout, "lookout")
        p50, mx = sample(paths, samples, lambda i, t: read_line_until(out, f"seq={i} "))
        return wake, p50, mx, memory_kib([agent.pid])
    finally:
        follow.stop(agent)


def monitrc(work, name, checks):
    """A Monit control file of its own: `set daemon 2`, no httpd, and after the content checks
    a sentinel whose `exec` runs once, in the first cycle, after every other check was seen."""
    d = os.path.join(work, name)
    os.makedirs(d)
    react = os.path.join(d, "react.sh")
    with open(react, "w") as f:
        f.write(f'#!/bin/sh\necho "$MONIT_SERVICE $(date +%s%N)" >> {d}/reactions\n')
    os.chmod(react, 0o755)
    rc = os.path.join(d, "monitrc")
    with open(rc, "w") as f:
        f.write(f"set daemon 2\nset logfile {d}/monit.log\nset idfile {d}/monit.id\n"
                f"set statefile {d}/monit.state\nset pidfile {d}/monit.pid\n")
        for i, p in enumerate(checks):
            f.write(f'check file app{i} with path {p}\n  if content = "{PATTERN}" then exec "{react}"\n')
        f.write(f'check file sentinel with path {d}/ready\n  if does not exist then exec "/usr/bin/touch {d}/ready"\n')
    os.chmod(rc, 0o600)
    return d, rc


def start_monit(d, rc):
    """Monit in the foreground (-I), by PID; returns once its first cycle is done."""
    m = subprocess.Popen(["monit", "-c", rc, "-I"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"))

    def first_cycle_done():
        if m.poll() is not None:
            sys.exit(f"monit exited ({m.returncode}): see {d}/stderr and {d}/monit.log")
        return os.path.exists(f"{d}/ready")

    follow.wait_until("Monit's first cycle", first_cycle_done)
    return m


def complete_lines(path):
    """The lines of a file that end with a newline (one being appended is left for later)."""
    try:
        with open(path) as f:
            return f.read().split("\n")[:-1]
    except FileNotFoundError:
        return []


def monit_reaction(d, service, patience=follow.PATIENCE):
    """The time Monit's exec wrote for `service` after the last one seen (ns)."""
    seen = [0]

    def wait(i, t):
        got = []

        def arrived():
            lines = complete_lines(f"{d}/reactions")
            got[:] = [int(x.split()[1]) for x in lines[seen[0]:] if x.split()[0] == service(i)]
            return bool(got)

        follow.wait_until(f"Monit's reaction for {service(i)}", arrived, patience)
        seen[0] = len(complete_lines(f"{d}/reactions"))
        return got[0]

    return wait


def peer_monit(work, fdir, samples, idle_s):
    paths = make_files(fdir, "monit")
    d, rc = monitrc(work, "monit", paths)
    m = start_monit(d, rc)
    try:
        wake = wakeups_per_minute([m.pid], idle_s)
        p50, mx = sample(paths, samples, monit_reaction(d, lambda i: f"app{i % CHECKS}"))
        return wake, p50, mx, memory_kib([m.pid])
    finally:
        follow.stop(m)


def follow_monit(work, fdir, body):
    """Monit's CPU while the writer appends `body` and the match to its one checked file."""
    path = os.path.join(fdir, "follow-monit.log")
    open(path, "w").close()
    d, rc = monitrc(work, "monit-follow", [path])
    m = start_monit(d, rc)
    try:
        c0 = follow.cpu_s(m.pid)
        t = time.time_ns()
        writer = follow.start_writer(body, follow.log_line(LINE), path)
        reacted = monit_reaction(d, lambda i: "app0", 600)(0, t)
        cpu = follow.cpu_s(m.pid) - c0
        writer.wait()
    finally:
        follow.stop(m)
        os.unlink(path)
    return (reacted - t) / 1e9, cpu


def peer_tailgrep(fdir, samples, idle_s):
    paths = make_files(fdir, "tailgrep")
    r, w = os.pipe()
    out = None
    procs = []
    try:
        for p in paths:
            t = subprocess.Popen(["tail", "-n0", "-F", p], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            g = subprocess.Popen(["grep", "--line-buffered", "-E", PATTERN], stdin=t.stdout, stdout=w)
            t.stdout.close()
            procs += [t, g]
        os.close(w)
        w = None
        out = os.fdopen(r, "rb")
        lines = follow.Lines(out, "tail|grep")
        for t in procs[::2]:
            follow.wait_until("tail to watch its file", lambda: follow.has_inotify_watch(t.pid))
        pids = [p.pid for p in procs]
        wake = wakeups_per_minute(pids, idle_s)
        p50, mx = sample(paths, samples, lambda i, t: read_line_until(lines, f"seq={i} "))
        return wake, p50, mx, memory_kib(pids)
    finally:
        if w is not None:
            os.close(w)
        for p in procs:
            follow.stop(p)
        if out is not None:
            out.close()
        else:
            os.close(r)


def write_pidfile(path, pid):
    """A pid file replaced in one rename, as a daemon writes it."""
    with open(path + ".tmp", "w") as f:
        f.write(f"{pid}\n")
    os.rename(path + ".tmp", path)


def exit_samples(pidfile, watched, samples, down, up):
    """Kills the watched process `samples` times, a random 0.05-2.05 s after the peer saw it
    running; down(i, t_kill_ns) -> the reaction's time (ns); up(i) waits until the peer has seen
    its successor (a new process, then its pid file). Each is reaped at once (no zombie).
    `watched` holds the running one (the caller stops the last)."""
    lat = []
    for i in range(samples):
        time.sleep(random.uniform(0.05, 2.05))  # a random phase of Monit's 2 s cycle
        t = time.time_ns()
        watched[0].kill()
        watched[0].wait()
        lat.append((down(i, t) - t) / 1e6)
        watched[0] = subprocess.Popen(["sleep", "100000"])
        write_pidfile(pidfile, watched[0].pid)
        up(i)
    lat.sort()
    return lat[len(lat) // 2], lat[-1]


def start_watched(pidfile):
    """The first watched process, and its pid file, before the peer starts: [Popen]."""
    proc = subprocess.Popen(["sleep", "100000"])
    write_pidfile(pidfile, proc.pid)
    return [proc]


def stop_watched(watched):
    watched[0].kill()
    watched[0].wait()


def exit_lookout(binary, work, samples):
    """lookout's sysV service check (pidfd on the pid in /var/run/NAME.pid), flapping off."""
    root = follow.lookout_root(work, "exit-root", "FLAPPING_COUNT_THRESHOLD=0\n")
    os.makedirs(os.path.join(root, "var/run"))
    pidfile = os.path.join(root, "var/run/demo.pid")
    for args in (["create", "service", "demo", "sysV"], ["enable", "service", "demo"]):
        subprocess.run([binary, "--root", root, *args], check=True, stdout=subprocess.DEVNULL)
    watched = start_watched(pidfile)
    agent = None
    try:
        agent = follow.start_agent(binary, root, 1)
        out = follow.Lines(agent.stdout, "lookout")

        def up(i):
            read_line_until(out, '"level":"OK"')

        def down(i, t):
            return read_line_until(out, '"level":"CRITICAL"')

        return exit_samples(pidfile, watched, samples, down, up)
    finally:
        if agent is not None:
            follow.stop(agent)
        stop_watched(watched)


def exit_monit(work, samples):
    """Monit's `check process ... with pidfile`: `exec` on `does not exist` and on `succeeded`."""
    d = os.path.join(work, "monit-exit")
    os.makedirs(d)
    pidfile = os.path.join(d, "demo.pid")
    for kind in ("down", "up"):
        with open(os.path.join(d, f"{kind}.sh"), "w") as f:
            f.write(f'#!/bin/sh\necho "$MONIT_SERVICE $(date +%s%N)" >> {d}/{kind}\n')
        os.chmod(os.path.join(d, f"{kind}.sh"), 0o755)
    rc = os.path.join(d, "monitrc")
    with open(rc, "w") as f:
        f.write(f"set daemon 2\nset logfile {d}/monit.log\nset idfile {d}/monit.id\n"
                f"set statefile {d}/monit.state\nset pidfile {d}/monit.pid\n"
                f'check process demo with pidfile {pidfile}\n'
                f'  if does not exist then exec "{d}/down.sh" else if succeeded then exec "{d}/up.sh"\n'
                f'check file sentinel with path {d}/ready\n  if does not exist then exec "/usr/bin/touch {d}/ready"\n')
    os.chmod(rc, 0o600)
    watched = start_watched(pidfile)
    m = None
    try:
        m = start_monit(d, rc)

        def up(i):
            follow.wait_until("Monit to see the process again", lambda: len(complete_lines(f"{d}/up")) > i)

        def down(i, t):
            follow.wait_until("Monit's reaction to the exit", lambda: len(complete_lines(f"{d}/down")) > i)
            return int(complete_lines(f"{d}/down")[i].split()[1])

        return exit_samples(pidfile, watched, samples, down, up)
    finally:
        if m is not None:
            follow.stop(m)
        stop_watched(watched)


def scan_figures(path):
    """MB/s per reader from bench/scan.sh's table (its last run's column)."""
    keys = {"lookout daemon": "lookout", "tail -n +1": "tail", "rg ": "rg", "grep -n -F": "grep"}
    got = {}
    if path and os.path.exists(path):
        for line in open(path):
            for k, who in keys.items():
                if line.startswith("| ") and k in line and who not in got:
                    got[who] = line.rstrip(" |\n").rsplit("| ", 1)[1] + " MB/s"
    return got


def main():
    binary, work, fdir = sys.argv[1], sys.argv[2], sys.argv[3]
    follow_mib, samples, idle_s = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    scan = scan_figures(sys.argv[7] if len(sys.argv) > 7 else None)
    random.seed(1)
    body = follow.make_body(work, follow_mib)
    gib = (os.path.getsize(body) + len(follow.log_line(LINE)) + 1) / (1 << 30)
    rows = {}
    print(f"measuring lookout ({CHECKS} checks) ...", file=sys.stderr)
    rows["lookout"] = peer_lookout(binary, work, fdir, samples, idle_s)
    print("measuring Monit ...", file=sys.stderr)
    rows["monit"] = peer_monit(work, fdir, samples, idle_s)
    print("measuring tail|grep ...", file=sys.stderr)
    rows["tail"] = peer_tailgrep(fdir, samples, idle_s)
    print("measuring process exits ...", file=sys.stderr)
    exits = {"lookout": exit_lookout(binary, work, samples), "monit": exit_monit(work, samples)}
    print("measuring follow cost ...", file=sys.stderr)
    cost = {
        "lookout": follow.follow_lookout(binary, work, fdir, body, PATTERN, LINE),
        "monit": follow_monit(work, fdir, body),
        "tail": follow.follow_tailgrep(fdir, body, ["-E"], PATTERN, LINE),
    }
    names = {
        "lookout": "lookout (`run --stdout`, LOG_LINES_AFTER_WINDOW_MS=0; sysV service check)",
        "monit": "Monit 5.33 (`set daemon 2`, `check file … if content =`, `check process`, `exec`)",
        "tail": f"`tail -n0 -F \\| grep --line-buffered` ({CHECKS} pipelines)",
    }
    print(f"| peer | write→reaction p50 / max ms ({samples}) | process exit→reaction p50 / max ms ({samples}) "
          f"| CPU s per GiB followed (s to react) | idle wake-ups/min, {CHECKS} checks "
          f"| RSS (PSS) KiB, {CHECKS} checks | catch-up scan |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for who in ("lookout", "monit", "tail"):
        wake, p50, mx, (rss, pss) = rows[who]
        secs, cpu = cost[who]
        catch = scan.get(who, "— (starts at the end)" if who == "monit" else "")
        ex = "{:.1f} / {:.1f}".format(*exits[who]) if who in exits else "—"
        print(f"| {names[who]} | {p50:.1f} / {mx:.1f} | {ex} | {cpu / gib:.2f} ({secs:.2f}) | {wake:.0f} | {rss:,} ({pss:,}) | {catch} |")
    for who, label in (("rg", "`rg --no-mmap -n -F -m1` (a scan)"), ("grep", "`LC_ALL=C grep -n -F -m1` (a scan)")):
        if who in scan:
            print(f"| {label} | | | | | | {scan[who]} |")


if __name__ == "__main__":
    main()
