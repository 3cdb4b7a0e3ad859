#!/usr/bin/env python3
"""An OTLP/HTTP metrics receiver for remora's tests.

Every POST to /v1/metrics is decoded with the official protobuf definitions
(PyPI `opentelemetry-proto`) and appended as one JSON line to OUT:
{"path", "headers", "encoding", "request"} where `request` is the
ExportMetricsServiceRequest as protobuf's JSON mapping (field names as in
the .proto). A body that does not decode is a 400 and is logged as
{"error": ...}: remora's tests fail on it.

How it answers is set with `POST /mode` (body `ok`, `500` or `hang`):
`hang` holds the request open until the mode changes.

Usage: otlp_receiver.py OUT [CERT KEY CLIENT_CA]
(prints the port it listens on, then serves; with CERT, KEY and CLIENT_CA it
serves HTTPS and requires a client certificate signed by CLIENT_CA)
"""

import gzip
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

OUT = sys.argv[1]
LOCK = threading.Lock()
STATE = {"mode": "ok"}


def record(entry):
    with LOCK:
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", ctype="application/x-protobuf"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/mode":
            STATE["mode"] = body.decode().strip()
            self.reply(200, b"ok", "text/plain")
            return
        mode = STATE["mode"]
        if mode == "hang":
            deadline = time.time() + 120
            while STATE["mode"] == "hang" and time.time() < deadline:
                time.sleep(0.02)
            record({"path": self.path, "hung": True})
            return
        if mode == "500":
            record({"path": self.path, "refused": 500})
            self.reply(500, b"no", "text/plain")
            return
        encoding = self.headers.get("Content-Encoding", "")
        try:
            raw = gzip.decompress(body) if encoding == "gzip" else body
            req = metrics_service_pb2.ExportMetricsServiceRequest()
            req.ParseFromString(raw)
        except Exception as e:  # noqa: BLE001 - any decode failure is the test's failure
            record({"path": self.path, "error": repr(e)})
            self.reply(400, b"undecodable", "text/plain")
            return
        record(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "encoding": encoding,
                "request": json_format.MessageToDict(
                    req, preserving_proto_field_name=True
                ),
            }
        )
        resp = metrics_service_pb2.ExportMetricsServiceResponse()
        self.reply(200, resp.SerializeToString())


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 5:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        ctx.load_verify_locations(sys.argv[4])
        ctx.verify_mode = ssl.CERT_REQUIRED
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
