-- wrk script: GET with the session cookie (env BENCH_COOKIE; empty for the NGINX targets).
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then wrk.headers["Cookie"] = cookie end
