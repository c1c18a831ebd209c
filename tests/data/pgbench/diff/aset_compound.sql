-- diff: unsupported-in=async,processes
-- asyncpg returns no rows for a simple-protocol query: the asyncpg modes refuse this before running
-- diff: query-modes=simple
-- \aset over a \; compound stores the columns of every statement
SELECT 1 AS a \; SELECT 2 AS b \aset
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
