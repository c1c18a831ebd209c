-- diff: query-modes=simple,extended,prepared
-- diff: dbload-modes=sequential,async,threads,processes
-- diff: transactions=2
-- the same values in every query mode, over two transactions
\set i 41
\set j :i + 1
BEGIN;
INSERT INTO probe (k, v) VALUES ('j', :j);
INSERT INTO probe (k, v) SELECT 'sum', :i::int + :j::int;
END;
