-- wrk script for the memory soak: alternates two requests on each connection, a plain chat
-- request and a streamed one (each from a file bench/payloads.py wrote).
-- Env: UBENCH_BODY, UBENCH_BODY2   the two request bodies (required)
--      UBENCH_PATH2                 path for the second one (default: the URL's path)
--      UBENCH_KEY, UBENCH_WRK       as in post.lua
local function slurp(name)
  local f = assert(io.open(assert(os.getenv(name), name .. " not set"), "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local key = "Bearer " .. (os.getenv("UBENCH_KEY") or "sk-none")
local reqs = {}
local n = 0

function init(args)
  local h1 = { ["Content-Type"] = "application/json", ["Authorization"] = key }
  local h2 = { ["Content-Type"] = "application/json", ["Authorization"] = key, ["Accept"] = "text/event-stream" }
  reqs[1] = wrk.format("POST", wrk.path, h1, slurp("UBENCH_BODY"))
  reqs[2] = wrk.format("POST", os.getenv("UBENCH_PATH2") or wrk.path, h2, slurp("UBENCH_BODY2"))
end

function request()
  n = n + 1
  return reqs[(n % 2) + 1]
end
dofile((os.getenv("UBENCH_WRK") or "bench/wrk") .. "/report.lua")
