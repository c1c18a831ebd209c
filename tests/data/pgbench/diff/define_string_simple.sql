-- diff: query-modes=simple,prepared
-- diff: args=-D s=hello "-Dq=it's"
-- a -D string in SQL: pgbench 15's simple mode pastes it in unquoted
INSERT INTO probe (k, v) VALUES ('before', 1);
INSERT INTO probe (k, v) VALUES ('s', :s);
INSERT INTO probe (k, v) VALUES ('q', :q);
