-- \shell whose command exits non-zero: pgbench fails the transaction
INSERT INTO probe (k, v) VALUES ('before', 1);
\shell false
INSERT INTO probe (k, v) VALUES ('after', 2);
