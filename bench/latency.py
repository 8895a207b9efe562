#!/usr/bin/env python3
"""Write -> alert latency, the measuring half of bench/latency.sh (one process, one clock).

Starts a recording HTTP server on loopback, starts the agent posting to it, then appends one
matching line at a time to K log files in turn (a check's CRITICAL expires after 1 s, so each
write raises a new CRITICAL) and takes, for each, the time from just before the write to the
arrival of its alert at the server. Prints the count, p50, p99 and max in ms, the alerts that
never came, and the agent's longest spool sync and state save (ms, from `status`).
Usage: latency.py LOOKOUT_BIN WORKDIR N WINDOW_MS
"""
import http.server
import json
import os
import subprocess
import sys
import threading
import time

BIN, WORK, N, WINDOW = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
K = 25            # checks written to in turn
GAP = 0.062       # seconds between writes: each check is written every K * GAP = 1.55 s > 1 s expiry
arrived = {}      # seq -> ns
lock = threading.Lock()
done = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        t = time.time_ns()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()
        try:
            alerts = json.loads(body)
        except ValueError:
            return
        for a in alerts if isinstance(alerts, list) else [alerts]:
            if a.get("level") != "CRITICAL":
                continue
            line = (((a.get("subject") or {}).get("details") or {}).get("line_matching") or {}).get("data", "")
            if "seq=" in line:
                seq = int(line.split("seq=")[1].split()[0])
                with lock:
                    arrived.setdefault(seq, t)
                    if len(arrived) >= N:
                        done.set()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]
root = os.path.join(WORK, "root")
os.makedirs(os.path.join(root, "usr/share/mender-monitor/config"), exist_ok=True)
with open(os.path.join(root, "usr/share/mender-monitor/config/config.sh"), "w") as f:
    if WINDOW != "default":
        f.write(f"LOG_LINES_AFTER_WINDOW_MS={WINDOW}\nDEFAULT_LOG_LINES_AFTER=0\n")
files = []
for k in range(K):
    path = os.path.join(WORK, f"app{k}.log")
    open(path, "w").close()
    files.append(path)
    subprocess.run([BIN, "--root", root, "create", "log", f"lat{k}", "ERROR crashed", path, "1"], check=True, capture_output=True)
    subprocess.run([BIN, "--root", root, "enable", "log", f"lat{k}"], check=True, capture_output=True)
agent_log = open(os.path.join(WORK, "agent.log"), "w")
agent = subprocess.Popen([BIN, "--root", root, "run", "--server", f"http://127.0.0.1:{port}", "--token", "t"],
                         stdout=subprocess.DEVNULL, stderr=agent_log)
try:
    deadline = time.time() + 30
    while "started: checks in" not in open(os.path.join(WORK, "agent.log")).read():
        if time.time() > deadline or agent.poll() is not None:
            sys.exit("the agent did not start: see " + os.path.join(WORK, "agent.log"))
        time.sleep(0.02)
    written = {}
    handles = [open(p, "a") for p in files]
    for seq in range(N):
        f = handles[seq % K]
        written[seq] = time.time_ns()
        f.write(f"2026-12-03T10:00:00Z app: ERROR crashed seq={seq} worker\n")
        f.flush()
        time.sleep(GAP)
    done.wait(30)
    status = subprocess.run([BIN, "--root", root, "status"], capture_output=True, text=True).stdout
    waits = {}
    for word in ("spool_sync_slowest_ms", "state_save_slowest_ms"):
        tail = status.split(word + " ", 1)[1] if word + " " in status else "?"
        waits[word] = tail.split(",")[0].split()[0]
finally:
    agent.terminate()
    agent.wait(10)
    server.shutdown()
lat = sorted((arrived[s] - written[s]) / 1e6 for s in written if s in arrived)
missing = N - len(lat)
if not lat:
    sys.exit("no alert arrived")
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{len(lat)} {pct(0.5):.1f} {pct(0.99):.1f} {lat[-1]:.1f} {missing} {waits['spool_sync_slowest_ms']} {waits['state_save_slowest_ms']}")
