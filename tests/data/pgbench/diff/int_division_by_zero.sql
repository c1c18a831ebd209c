-- integer division by zero fails the transaction
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x 1 / 0
INSERT INTO probe (k, v) VALUES ('x', :x);
