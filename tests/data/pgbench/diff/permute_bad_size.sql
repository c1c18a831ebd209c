-- permute() with a size of 0 fails
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x permute(1, 0, 5)
