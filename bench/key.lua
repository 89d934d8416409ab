-- wrk script: an API key in the Authorization header (env BENCH_KEY), no cookie, no CSRF
-- header; the method from env BENCH_METHOD (default GET).
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
