-- \gset with a prefix, and \gset on its own line after a complete query
SELECT 2 AS a, 3 AS b \gset p_
SELECT 4 AS a;
\gset
\set s :p_a + :p_b + :a
INSERT INTO probe (k, v) VALUES ('p_a', :p_a);
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('s', :s);
