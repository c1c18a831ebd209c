-- diff: query-modes=prepared,extended
-- \gset: one row's columns become variables, used in SQL and in \set
SELECT 1 AS a, 'x' AS b, 2.5 AS c \gset
\set d :a + 1
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
