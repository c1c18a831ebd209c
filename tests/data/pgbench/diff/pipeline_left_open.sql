-- diff: unsupported-in=async,processes
-- diff: query-modes=extended
-- end of script with the pipeline still open: the client aborts
INSERT INTO probe (k, v) VALUES ('before', 1);
\startpipeline
INSERT INTO probe (k, v) VALUES ('in', 1);
