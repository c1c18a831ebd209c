-- diff: query-modes=extended
-- \syncpipeline is PostgreSQL 17's; pgbench 15 does not know it
\startpipeline
INSERT INTO probe (k, v) VALUES ('one', 1);
\syncpipeline
INSERT INTO probe (k, v) VALUES ('two', 2);
\endpipeline
