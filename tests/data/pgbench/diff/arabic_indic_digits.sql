-- Arabic-Indic digits are no number to pgbench
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x ١٢
