-- wrk script: POSTs MCP `tools/call` (echo) on one Streamable HTTP session.
--
-- Environment:
--   MCP_SESSION_ID   the Mcp-Session-Id returned by initialize (required unless stateless)
--   BENCH_LABEL      a label printed on the machine-readable result line
--   BENCH_STATELESS  "1": send 2026-07-28 stateless requests instead (no session;
--                    `_meta` with the protocol version, and the Mcp-Method/Mcp-Name headers)
--   BENCH_BEARER     a credential sent as `Authorization: Bearer …` (optional)
--
-- Every request carries a fresh JSON-RPC id, so concurrent requests on the
-- one session never share an id. On exit it prints one line:
--   BENCH label=… requests=… duration_us=… rps=… p50_us=… p90_us=… p99_us=… max_us=… errors=… non2xx=…

local stateless = os.getenv("BENCH_STATELESS") == "1"
local session = os.getenv("MCP_SESSION_ID")
if not stateless and (session == nil or session == "") then
  error("MCP_SESSION_ID is not set")
end
local label = os.getenv("BENCH_LABEL") or "run"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
if stateless then
  wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
  wrk.headers["Mcp-Method"] = "tools/call"
  wrk.headers["Mcp-Name"] = "echo"
else
  wrk.headers["Mcp-Session-Id"] = session
  wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
end
local bearer = os.getenv("BENCH_BEARER")
if bearer ~= nil and bearer ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. bearer
end

-- Threads get disjoint id ranges (each wrk thread has its own Lua state).
local threads = 0
function setup(thread)
  thread:set("id_base", threads * 1000000000)
  threads = threads + 1
end

id_base = 0
local counter = 0
local prefix = '{"jsonrpc":"2.0","id":'
local suffix = ',"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from wrk"}}}'
if stateless then
  suffix = ',"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello from wrk"},'
    .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    .. '"io.modelcontextprotocol/clientCapabilities":{},'
    .. '"io.modelcontextprotocol/clientInfo":{"name":"wrk","version":"0"}}}}'
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, prefix .. (id_base + counter) .. suffix)
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH label=%s requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    label, summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors, e.status))
end
