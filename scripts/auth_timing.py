#!/usr/bin/env python3
"""Times basic-auth answers of a remora binary: a known user with a wrong
password against an unknown user, and a repeated wrong pair.

    scripts/auth_timing.py [path/to/remora] [requests]

Starts the binary on a free port with a one-user --web.config.file (bcrypt
cost 10) and sends `requests` sequential logins of each kind, each with a new
password (so no cache helps), then the same wrong pair again and again.
Prints the median and 90th percentile in milliseconds.
"""

import base64
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# bcrypt("s3cret", cost 10)
HASH = "$2b$10$Y3ts.omWbjkA5VHIkYLFzeQTgDkcDPHj5jD6XQufzuelD9wNzB0Dm"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def login(port, user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    start = time.perf_counter()
    conn.request("GET", "/metrics", headers={"Authorization": f"Basic {token}"})
    resp = conn.getresponse()
    resp.read()
    elapsed = (time.perf_counter() - start) * 1000
    conn.close()
    return resp.status, elapsed


def summary(name, samples):
    samples = sorted(samples)
    p90 = samples[int(0.9 * (len(samples) - 1))]
    print(f"{name:<34} median {statistics.median(samples):8.2f} ms   p90 {p90:8.2f} ms")
    return statistics.median(samples)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/remora"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "exporter.yaml")
        web = os.path.join(d, "web.yml")
        with open(config, "w") as f:
            f.write("host: {enabled: false}\n")
        with open(web, "w") as f:
            f.write(f"basic_auth_users:\n  prom: {HASH}\n")
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.config.file={web}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
        )
        try:
            deadline = time.time() + 20
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    c.request("GET", "/-/healthy")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    sys.exit("remora did not start")
                time.sleep(0.05)
            login(port, "prom", "warm-up")
            known, unknown = [], []
            for i in range(n):
                # Interleaved, so load changes hit both kinds alike.
                known.append(login(port, "prom", f"wrong-{i}")[1])
                unknown.append(login(port, "nobody", f"wrong-{i}")[1])
            repeated = [login(port, "prom", "same-wrong")[1] for _ in range(n)]
            print(f"{binary}: {n} logins each, bcrypt cost 10")
            a = summary("known user, wrong password", known)
            b = summary("unknown user", unknown)
            summary("same wrong pair again (2nd..)", repeated[1:])
            print(f"unknown / known median ratio: {b / a:.2f}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
