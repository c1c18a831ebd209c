-- diff: unsupported-in=async,processes
-- diff: query-modes=extended,prepared
-- diff: dbload-modes=sequential,async,threads
-- a pipeline of inserts, then a query after it
\set x 5
\startpipeline
INSERT INTO probe (k, v) VALUES ('p1', :x);
INSERT INTO probe (k, v) VALUES ('p2', :x + 1);
SELECT 1;
\endpipeline
INSERT INTO probe (k, v) VALUES ('after', 3);
