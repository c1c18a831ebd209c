-- diff: query-modes=simple
-- pipelines need the extended protocol: refused in -M simple
INSERT INTO probe (k, v) VALUES ('before', 1);
\startpipeline
INSERT INTO probe (k, v) VALUES ('in', 1);
\endpipeline
