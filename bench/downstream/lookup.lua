-- GET /v1/teamspaces/bench/members/{oid} for random provisioned oids (from $OIDS, one per line).
local oids = {}
for line in io.lines(os.getenv("OIDS")) do oids[#oids + 1] = line end
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ADMIN_TOKEN")
request = function()
  return wrk.format("GET", "/v1/teamspaces/bench/members/" .. oids[math.random(1, #oids)])
end
