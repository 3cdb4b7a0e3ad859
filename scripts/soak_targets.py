#!/usr/bin/env python3
"""Targets for scripts/soak.sh: label churn, a flapping target, Prometheus text.

GET /churn    JSON whose keys change at every request (label churn via {@key})
GET /flap     200 with JSON for 5 requests, then 500 for 5, and so on
GET /prom     Prometheus text whose label values change at every request
Prints "listening on PORT" once bound.
"""
import itertools
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counter = itertools.count()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        n = next(counter)
        if self.path == "/churn":
            items = {f"item-{n}-{i}": {"value": i, "state": "ok"} for i in range(50)}
            self.reply(200, json.dumps({"items": items, "n": n}), "application/json")
        elif self.path == "/flap":
            if (n // 5) % 2 == 0:
                self.reply(200, json.dumps({"up": True, "n": n}), "application/json")
            else:
                self.reply(500, "down", "text/plain")
        elif self.path == "/prom":
            lines = ["# TYPE soak_requests_total counter"]
            lines += [f'soak_requests_total{{id="{n}-{i}"}} {i}' for i in range(50)]
            self.reply(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
        else:
            self.reply(404, "not found", "text/plain")


server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
