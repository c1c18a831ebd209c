-- diff: judge-mode=simple
-- dbload sends NULL as SQL NULL in every -M mode, as pgbench does in simple mode (pgbench 15 binds the text NULL in extended/prepared): README
-- CASE without ELSE is NULL when nothing matches
\set a CASE WHEN false THEN 1 END
\set b CASE WHEN 1 > 2 THEN 1 WHEN 2 > 1 THEN 2 END
\set c :a IS NULL
\set d CASE WHEN NULL THEN 1 ELSE 0 END
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
