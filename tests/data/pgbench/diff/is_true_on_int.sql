-- IS TRUE on an integer: no coercion error in pgbench 15
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x 1 IS TRUE
INSERT INTO probe (k, v) VALUES ('x', :x);
