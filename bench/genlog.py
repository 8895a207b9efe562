#!/usr/bin/env python3
"""Writes a realistic log for the benchmarks: varied lines of ~114 bytes, repeated to SIZE_MIB,
then one last line with PATTERN (the only match), or no such line when PATTERN is empty (a
body that a follower's benchmark appends its own match to). Usage: genlog.py FILE SIZE_MIB PATTERN"""
import random
import sys

path, size_mib, pattern = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(1)
levels = ["INFO"] * 20 + ["DEBUG"] * 5 + ["WARN"]
paths = ["/api/v1/items", "/api/v1/users/42", "/health", "/api/devices/v1/deployments/next", "/static/app.js"]
block = "".join(
    f"2026-11-29T10:{i//6000%60:02d}:{i//100%60:02d}.{i%1000:03d}Z raspberrypi app[{1000+i%50}]: "
    f"{random.choice(levels)} request id={random.randrange(10**9)} path={random.choice(paths)} "
    f"status={random.choice([200,200,200,204,404,500])} ms={random.randrange(300)}\n"
    for i in range(100000)
).encode()
copies = -(-size_mib * 1048576 // len(block))
with open(path, "wb") as f:
    for _ in range(copies):
        f.write(block)
    if pattern:
        f.write(f"2026-11-29T11:00:00.000Z raspberrypi app[1]: {pattern}: segfault in worker\n".encode())
