-- wrk script: every request onboards a new tenant (unique id per thread and
-- request) into one of the three default tiers.  Arguments after `--`: a
-- tag for the ids, then the bearer token to send.
counter = 0
prefix = "w"
token = nil
local tiers = { "basic", "premium", "advanced" }

function setup(thread)
  thread:set("prefix", "w" .. tostring(math.random(100000, 999999)))
end

function init(args)
  prefix = prefix .. (args[1] or "")
  token = args[2]
end

function request()
  counter = counter + 1
  local body = string.format('{"id":"%s-%d","tier":"%s"}', prefix, counter, tiers[counter % 3 + 1])
  local headers = { ["Content-Type"] = "application/json" }
  if token then
    headers["Authorization"] = "Bearer " .. token
  end
  return wrk.format("POST", "/api/v1/tenants", headers, body)
end

response = function(status, headers, body)
  if status ~= 201 then
    io.stderr:write("status " .. status .. "\n")
  end
end
