-- wrk script: every request onboards a new tenant (unique id per thread and
-- request) into one of the three default tiers.
counter = 0
prefix = "w"
local tiers = { "basic", "premium", "advanced" }

function setup(thread)
  thread:set("prefix", "w" .. tostring(math.random(100000, 999999)))
end

function init(args)
  prefix = prefix .. (args[1] or "")
end

function request()
  counter = counter + 1
  local body = string.format('{"id":"%s-%d","tier":"%s"}', prefix, counter, tiers[counter % 3 + 1])
  return wrk.format("POST", "/api/v1/tenants", { ["Content-Type"] = "application/json" }, body)
end

response = function(status, headers, body)
  if status ~= 201 then
    io.stderr:write("status " .. status .. "\n")
  end
end
