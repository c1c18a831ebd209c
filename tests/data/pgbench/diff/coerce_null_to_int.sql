-- diff: judge-mode=simple
-- dbload sends NULL as SQL NULL in every -M mode, as pgbench does in simple mode (pgbench 15 binds the text NULL in extended/prepared): README
-- NULL in arithmetic gives NULL, no error
INSERT INTO probe (k, v) VALUES ('before', 1);
\set i NULL + 1
INSERT INTO probe (k, v) VALUES ('i', :i);
