-- \aset: every row's columns, the last row wins; no row leaves variables alone
\set a 0
SELECT g AS a FROM generate_series(1, 3) AS g \aset
INSERT INTO probe (k, v) VALUES ('a', :a);
SELECT 9 AS a WHERE false \aset
INSERT INTO probe (k, v) VALUES ('a', :a);
SELECT 7 AS b \aset q_
INSERT INTO probe (k, v) VALUES ('q_b', :q_b);
