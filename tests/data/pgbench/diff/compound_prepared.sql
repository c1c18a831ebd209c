-- diff: query-modes=prepared,extended
-- \; cannot be prepared: in -M prepared / extended the command fails
INSERT INTO probe (k, v) VALUES ('before', 1);
INSERT INTO probe (k, v) VALUES ('c1', 1) \; INSERT INTO probe (k, v) VALUES ('c2', 2);
