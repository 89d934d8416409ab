-- wrk script: the local endpoint's SQL API with the admin token (env BENCH_TOKEN). With
-- BENCH_FRESH=1 every request's SQL text is new (a literal changes), so it is parsed and
-- translated each time; without it the text repeats and the translation is a cache hit.
local token = os.getenv("BENCH_TOKEN")
local fresh = os.getenv("BENCH_FRESH") == "1"
wrk.headers["Authorization"] = "Bearer " .. token
local n = 0
local base = "/v0/sql?q=SELECT%20count()%20AS%20orders%2C%20uniq(product_id)%20AS%20products%20FROM%20orders%20WHERE%20org_id%20%3D%20'acme'%20AND%20"
request = function()
  local k = 1
  if fresh then n = n + 1; k = n end
  return wrk.format("GET", base .. k .. "%20%3E%200%20FORMAT%20JSON")
end
