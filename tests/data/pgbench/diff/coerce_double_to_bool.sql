-- "cannot coerce double to boolean"
INSERT INTO probe (k, v) VALUES ('before', 1);
\set b NOT 0.0
INSERT INTO probe (k, v) VALUES ('b', :b);
