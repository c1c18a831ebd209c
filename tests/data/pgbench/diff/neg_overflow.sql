-- negating the smallest int64
INSERT INTO probe (k, v) VALUES ('before', 1);
\set m -9223372036854775808
\set x -:m
