-- POST /Users with a new userName and externalId every time.
local prefix = os.getenv("SCIM_PREFIX") or ""
local counter = 0

local next_id = 0
setup = function(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/scim+json"
request = function()
  counter = counter + 1
  local n = (thread_id or 0) * 10000000 + counter
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"post%d@example.com",' ..
    '"externalId":"9f2504e0-4f89-41d3-9a0c-%012d","active":true,"displayName":"Post %d",' ..
    '"emails":[{"value":"post%d@example.com","type":"work","primary":true}]}', n, n, n, n)
  return wrk.format("POST", prefix .. "/Users", nil, body)
end
