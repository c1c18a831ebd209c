-- variable names as pgbench allows them: letters beyond ASCII
\set ä 1
\set café :ä + 1
\set _x9 :café * 2
INSERT INTO probe (k, v) VALUES ('ä', :ä);
INSERT INTO probe (k, v) VALUES ('café', :café);
INSERT INTO probe (k, v) VALUES ('_x9', :_x9);
