-- diff: query-modes=simple,prepared
-- an SQL error at run time aborts the client, naming its command
INSERT INTO probe (k, v) VALUES ('before', 1);
\set z 0
SELECT 1 / :z;
INSERT INTO probe (k, v) VALUES ('after', 1);
