-- diff: query-modes=extended
-- \endpipeline outside a pipeline
INSERT INTO probe (k, v) VALUES ('before', 1);
\endpipeline
