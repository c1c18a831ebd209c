-- the smallest int64 divided by -1
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x (-9223372036854775807 - 1) / -1
