-- diff: judge-mode=simple
-- dbload sends NULL as SQL NULL in every -M mode, as pgbench does in simple mode (pgbench 15 binds the text NULL in extended/prepared): README
-- diff: query-modes=simple,extended,prepared
-- diff: dbload-modes=sequential,async,threads
-- NULL, true and false as variables and as values on the wire
\set n NULL
\set t true
\set f false
\set cmp 1 < 2
INSERT INTO probe (k, v) VALUES ('n', :n);
INSERT INTO probe (k, v) VALUES ('t', :t);
INSERT INTO probe (k, v) VALUES ('f', :f);
INSERT INTO probe (k, v) VALUES ('cmp', :cmp);
