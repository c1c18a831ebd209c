-- pgbench's truth rules for \if: integers, booleans, NULL, doubles, text
\set n NULL
\if 0
INSERT INTO probe (k, v) VALUES ('int 0', 'true');
\endif
\if -3
INSERT INTO probe (k, v) VALUES ('int -3', 'true');
\endif
\if :n
INSERT INTO probe (k, v) VALUES ('null', 'true');
\endif
\if 0.0
INSERT INTO probe (k, v) VALUES ('double 0.0', 'true');
\endif
\if 2.5
INSERT INTO probe (k, v) VALUES ('double 2.5', 'true');
\endif
\if 1 < 2 AND NOT false
INSERT INTO probe (k, v) VALUES ('and', 'true');
\endif
INSERT INTO probe (k, v) VALUES ('end', 1);
