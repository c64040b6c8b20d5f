-- wrk: GET authorize with the same valid token every time (the warm path).
local f = assert(io.open(os.getenv("TOKEN_FILE"), "r"))
local token = f:read("*l")
f:close()
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token

function done(summary, latency, requests)
  local non200 = summary.errors.status
  io.write(string.format("non-200 answers: %d\n", non200))
end
