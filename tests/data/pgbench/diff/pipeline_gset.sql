-- diff: unsupported-in=async,processes
-- diff: query-modes=extended
-- \gset inside a pipeline is refused by pgbench 15
\startpipeline
INSERT INTO probe (k, v) VALUES ('in', 1);
SELECT 1 AS a \gset
\endpipeline
