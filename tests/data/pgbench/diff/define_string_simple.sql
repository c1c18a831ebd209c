-- diff: judge-mode=prepared
-- -M simple: dbload quotes text, so it writes what pgbench's prepared mode writes (pgbench 15 pastes it unquoted): README
-- diff: query-modes=simple,prepared
-- diff: args=-D s=hello "-Dq=it's"
-- a -D string in SQL: pgbench 15's simple mode pastes it in unquoted
INSERT INTO probe (k, v) VALUES ('before', 1);
INSERT INTO probe (k, v) VALUES ('s', :s);
INSERT INTO probe (k, v) VALUES ('q', :q);
