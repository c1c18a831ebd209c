-- diff: dbload-modes=sequential,async,threads,processes
-- diff: transactions=3
-- diff: args=-D n=0
-- a \gset variable carries over to the next transaction of the client
SELECT :n + 1 AS n \gset
INSERT INTO probe (k, v) VALUES ('n', :n);
