"""A stdio MCP server that misbehaves on request, for the gateway's fault tests.

Tools: echo (answers), hang (never answers), progress_then_silence (one
progress notification, then nothing), bad_utf8 (a line with an invalid UTF-8
byte, then the answer), too_long (an answer over 16 MiB, the gateway's line
limit). FAULTY_INIT_DELAY delays the initialize answer (a slow npx start);
FAULTY_PID_DIR gets one file per started process, named by its pid.
"""

import json
import os
import sys
import time

out = sys.stdout.buffer
pid_dir = os.environ.get("FAULTY_PID_DIR")
if pid_dir:
    open(os.path.join(pid_dir, str(os.getpid())), "w").close()


def send(message):
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def answer(mid, text):
    send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})


TOOLS = ["echo", "hang", "progress_then_silence", "bad_utf8", "too_long"]

for raw in sys.stdin.buffer:
    try:
        msg = json.loads(raw)
    except ValueError:
        continue
    mid, method = msg.get("id"), msg.get("method")
    params = msg.get("params") or {}
    if method == "initialize":
        time.sleep(float(os.environ.get("FAULTY_INIT_DELAY", "0")))
        send({
            "jsonrpc": "2.0",
            "id": mid,
            "result": {
                "protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "faulty", "version": "1"},
            },
        })
    elif method == "tools/list":
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": tools}})
    elif method == "tools/call":
        name = params.get("name")
        token = (params.get("_meta") or {}).get("progressToken")
        if name == "echo":
            answer(mid, (params.get("arguments") or {}).get("text", "ok"))
        elif name == "progress_then_silence" and token is not None:
            send({"jsonrpc": "2.0", "method": "notifications/progress",
                  "params": {"progressToken": token, "progress": 1, "total": 10}})
        elif name == "bad_utf8":
            out.write(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"\xff"}}\n')
            out.flush()
            answer(mid, "after the bad line")
        elif name == "too_long":
            head = b'{"jsonrpc":"2.0","id":' + json.dumps(mid).encode() + b',"result":{"pad":"'
            out.write(head + b"x" * (17 * 1024 * 1024) + b'"}}\n')
            out.flush()
    elif mid is not None and method is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "no " + str(method)}})
