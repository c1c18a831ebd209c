-- a variable name starting with a digit
INSERT INTO probe (k, v) VALUES ('before', 1);
\set 1x 2
