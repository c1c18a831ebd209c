-- \set of an undefined variable fails at run time
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x :nope + 1
