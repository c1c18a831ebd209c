-- diff: unsupported-in=async,processes
-- asyncpg returns no rows for a simple-protocol query: the asyncpg modes refuse this before running
-- diff: query-modes=simple
-- \gset on a \; compound takes the last statement's row
SELECT 1 AS a \; SELECT 2 AS b \gset
INSERT INTO probe (k, v) VALUES ('b', :b);
