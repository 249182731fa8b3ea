-- wrk script for bench/authserver.sh: the authorization server's hot endpoints.
--
-- Environment:
--   BENCH_MODE   authorize | exchange | refresh
--   BENCH_IN     input file, one item a line (see below)
--   BENCH_OUT    output file prefix (one file per wrk thread: PREFIX.N)
--   BENCH_LABEL  label of the result line
--   authorize: BENCH_IN has "verifier challenge" lines; BENCH_AUTHORIZE is the
--     /authorize path with CHALLENGE and STATE placeholders; BENCH_COOKIE the
--     signed-in session (consent remembered, so the answer is a 303 with a code).
--     Writes "code verifier" lines.
--   exchange: BENCH_IN has "code verifier" lines; BENCH_CLIENT_ID, BENCH_REDIRECT.
--     POST /token grant_type=authorization_code. Writes refresh tokens.
--   refresh: BENCH_IN has refresh tokens; POST /token grant_type=refresh_token,
--     each token used once (rotation); the new refresh token of each answer joins
--     the queue, so the run never runs out. Writes the new refresh tokens.
-- Every input line is used at most once; once they run out the thread sends
-- GET /healthz and counts it as "spare" (the run is then too long for its input).
-- On exit it prints:
--   BENCH label=… requests=… spare=… ok=… duration_us=… rps=… p50_us=… p90_us=… p99_us=… max_us=… errors=… non2xx=…

local mode = os.getenv("BENCH_MODE")
local label = os.getenv("BENCH_LABEL") or mode

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

tid = 0
spare = 0
ok = 0
local items = {}
local n = 0
local nthreads = 1
local out

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local i = 0
  for line in io.lines(os.getenv("BENCH_IN")) do
    -- Threads take disjoint lines.
    if i % nthreads == tid then table.insert(items, line) end
    i = i + 1
  end
  out = io.open(os.getenv("BENCH_OUT") .. "." .. tid, "w")
  wrk.headers["Accept"] = "application/json"
  if mode == "authorize" then
    wrk.method = "GET"
    wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
  else
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end

local client_id = urlencode(os.getenv("BENCH_CLIENT_ID") or "")
local redirect = urlencode(os.getenv("BENCH_REDIRECT") or "")
local authorize = os.getenv("BENCH_AUTHORIZE") or ""

function request()
  n = n + 1
  local item = items[n]
  if item == nil then
    spare = spare + 1
    return wrk.format("GET", "/healthz", {}, nil)
  end
  if mode == "authorize" then
    local verifier, challenge = item:match("(%S+) (%S+)")
    local path = authorize:gsub("CHALLENGE", challenge):gsub("STATE", verifier)
    return wrk.format(nil, path)
  elseif mode == "exchange" then
    local code, verifier = item:match("(%S+) (%S+)")
    return wrk.format(nil, "/token", nil,
      "grant_type=authorization_code&code=" .. code .. "&client_id=" .. client_id ..
      "&redirect_uri=" .. redirect .. "&code_verifier=" .. verifier)
  else
    return wrk.format(nil, "/token", nil,
      "grant_type=refresh_token&refresh_token=" .. urlencode(item) .. "&client_id=" .. client_id)
  end
end

function response(status, headers, body)
  if mode == "authorize" then
    local loc = headers["location"] or headers["Location"]
    if status == 303 and loc then
      local code = loc:match("[?&]code=([^&]+)")
      local state = loc:match("[?&]state=([^&]+)")
      if code and state then
        ok = ok + 1
        out:write(code, " ", state, "\n")
      end
    end
  elseif status == 200 then
    local rt = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if rt then
      ok = ok + 1
      out:write(rt, "\n")
      -- A refresh answer's new token is the next one to use: the supply never runs out.
      if mode == "refresh" then table.insert(items, rt) end
    end
  end
end

function done(summary, latency, requests)
  local sp, good = 0, 0
  for _, t in ipairs(threads) do
    sp = sp + t:get("spare")
    good = good + t:get("ok")
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH label=%s requests=%d spare=%d ok=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d non2xx=%d\n",
    label, summary.requests, sp, good, summary.duration, (summary.requests - sp) / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors, e.status))
end
