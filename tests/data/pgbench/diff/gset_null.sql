-- diff: null-reads-as=''
-- dbload's \gset of a NULL sets NULL; pgbench 15 stores the empty string: README
-- \gset of a NULL column: the variable goes back into SQL
SELECT NULL::int AS a, 5 AS b \gset
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
