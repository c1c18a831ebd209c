-- int() of a double beyond int64
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x int(1e19)
