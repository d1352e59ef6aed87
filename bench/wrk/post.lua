-- wrk script: POST one fixed chat request (from a file bench/payloads.py wrote) on every
-- connection. wrk pre-builds the request once, so the generator costs as little as possible.
-- Env: UBENCH_BODY  path of the request body (required)
--      UBENCH_KEY   bearer key (sent to every peer; the mocks ignore it)
--      UBENCH_SSE   "1" adds Accept: text/event-stream
--      UBENCH_WRK   directory of this script (for report.lua)
local f = assert(io.open(assert(os.getenv("UBENCH_BODY"), "UBENCH_BODY not set"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("UBENCH_KEY") or "sk-none")
if os.getenv("UBENCH_SSE") == "1" then wrk.headers["Accept"] = "text/event-stream" end
dofile((os.getenv("UBENCH_WRK") or "bench/wrk") .. "/report.lua")
