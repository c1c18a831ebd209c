-- slow: I/O-bound, the server waits 50 ms per transaction (pg_sleep): where concurrency wins
SELECT pg_sleep(0.05);
