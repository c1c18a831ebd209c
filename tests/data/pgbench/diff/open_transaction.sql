-- a transaction left open at the end of the script aborts the client
INSERT INTO probe (k, v) VALUES ('committed', 1);
BEGIN;
INSERT INTO probe (k, v) VALUES ('uncommitted', 2);
