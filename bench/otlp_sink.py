#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for bench/observability.sh (standard
library only): accepts POST /v1/traces, answers 200 with an empty
ExportTraceServiceResponse (zero bytes is its valid encoding), and keeps the
number of exports, bytes and request spans received in COUNT_FILE ("exports
bytes request_spans"). A request span is counted by its `mcpgate.request_id`
attribute key, which only request spans carry: a cheap count that shows whether
the gateway dropped spans (its queue full) without decoding the protobuf.

  otlp_sink.py COUNT_FILE   prints "listening on http://127.0.0.1:PORT"
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNT_FILE = sys.argv[1]
lock = threading.Lock()
totals = [0, 0, 0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        ok = self.path == "/v1/traces"
        if ok:
            with lock:
                totals[0] += 1
                totals[1] += len(body)
                totals[2] += body.count(b"mcpgate.request_id")
                with open(COUNT_FILE, "w") as f:
                    f.write(f"{totals[0]} {totals[1]} {totals[2]}\n")
        self.send_response(200 if ok else 404)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
