-- diff: judge-mode=prepared
-- -M simple: dbload quotes text, so it writes what pgbench's prepared mode writes (pgbench 15 pastes it unquoted): README
-- diff: query-modes=simple,prepared
-- double division by zero gives +-Infinity and NaN, as pgbench prints them
\set a 1.0 / 0
\set b -1.0 / 0
\set c 0.0 / 0
\set d 1 / 0.0
\set e :a IS NULL
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
