-- wrk script: POST with the session cookie and the CSRF header (env BENCH_COOKIE).
wrk.method = "POST"
wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE")
wrk.headers["X-BFF-CSRF"] = "1"
