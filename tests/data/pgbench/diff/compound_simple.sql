-- diff: query-modes=simple
-- \; joins statements into one command sent as one simple-protocol message
\set x 4
INSERT INTO probe (k, v) VALUES ('c1', :x) \; INSERT INTO probe (k, v) VALUES ('c2', :x * 2);
INSERT INTO probe (k, v) VALUES ('after', 1);
