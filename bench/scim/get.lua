-- GET /Users?filter=userName eq "user<random>@example.com" over the loaded users.
local users = tonumber(os.getenv("USERS") or "10000")
local prefix = os.getenv("SCIM_PREFIX") or ""
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
request = function()
  local filter = string.format('userName eq "user%d@example.com"', math.random(0, users - 1))
  filter = filter:gsub(" ", "%%20"):gsub('"', "%%22")
  return wrk.format("GET", prefix .. "/Users?filter=" .. filter)
end
