-- \gset after a meta-command, not an SQL query: refused at parse time
INSERT INTO probe (k, v) VALUES ('x', 1);
\set x 1
\gset
