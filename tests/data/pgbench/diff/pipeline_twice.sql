-- diff: unsupported-in=async,processes
-- diff: query-modes=extended
-- \startpipeline inside a pipeline: the transaction fails
INSERT INTO probe (k, v) VALUES ('before', 1);
\startpipeline
\startpipeline
INSERT INTO probe (k, v) VALUES ('in', 1);
\endpipeline
