-- POST /Users with a new userName and externalId every time. externalId is the user's object
-- id; Entra's are random GUIDs, so by default these are too (IDS=sequential for the old,
-- friendlier pattern, which appends to every index instead of inserting at random places).
local prefix = os.getenv("SCIM_PREFIX") or ""
local sequential = os.getenv("IDS") == "sequential"
local counter = 0

local next_id = 0
setup = function(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end
init = function(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/scim+json"

local function random_guid()
  local r = math.random
  return string.format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x",
    r(0, 65535), r(0, 65535), r(0, 65535), r(0, 4095), 32768 + r(0, 16383), r(0, 65535), r(0, 65535), r(0, 65535))
end

request = function()
  counter = counter + 1
  local n = (thread_id or 0) * 10000000 + counter
  -- The userName carries the id too, so users never repeat across runs of this script.
  local id = sequential and string.format("9f2504e0-4f89-41d3-%04d-%012d", os.time() % 10000, n) or random_guid()
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"post-%s@example.com",' ..
    '"externalId":"%s","active":true,"displayName":"Post %d",' ..
    '"emails":[{"value":"post-%s@example.com","type":"work","primary":true}]}', id, id, n, id)
  return wrk.format("POST", prefix .. "/Users", nil, body)
end
