-- pgbench's predefined variables on a database without pgbench's tables
\set r random(3, 3)
INSERT INTO probe (k, v) VALUES ('client_id', :client_id);
INSERT INTO probe (k, v) VALUES ('scale', :scale);
INSERT INTO probe (k, v) VALUES ('r', :r);
