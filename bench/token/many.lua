-- wrk: GET authorize with a new valid token on every request (the cold path: every
-- signature verified). Thread i of n sends lines i, i+n, i+2n, ... of TOKENS_FILE, so no token
-- is sent twice while the file lasts; done() says whether it lasted.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local stride = tonumber(os.getenv("THREADS"))
  -- Requests are formatted here, not per request: the load generator shares the machine's
  -- two cores with the server and should spend as little of them as it can.
  tokens = {}
  local n = 0
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    if n % stride == index then
      tokens[#tokens + 1] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. line })
    end
    n = n + 1
  end
  next_token = 1
end

function request()
  local formatted = tokens[next_token]
  next_token = next_token % #tokens + 1
  return formatted
end

function done(summary, latency, requests)
  local available = 0
  for _, t in ipairs(threads) do
    available = available + #t:get("tokens")
  end
  io.write(string.format("requests: %d, distinct tokens: %d%s\n", summary.requests, available,
    summary.requests > available and " (TOKENS RAN OUT: repeats were cached, the figure is too high)" or ""))
  io.write(string.format("non-200 answers: %d\n", summary.errors.status))
end
