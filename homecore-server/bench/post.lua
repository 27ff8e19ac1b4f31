-- wrk script: POST /api/states/<entity> with a state that changes on every request, so each
-- request is a real write (a state change and its event), not a no-op.
local counter = 0
local path = os.getenv("HOMECORE_POST_PATH") or "/api/states/sensor.load_test"

request = function()
  counter = counter + 1
  return wrk.format("POST", path, nil, '{"state":"' .. counter .. '","attributes":{"unit_of_measurement":"W"}}')
end
