-- \elif on a value read by \gset, inside a transaction
BEGIN;
SELECT 3 AS n, true AS flag \gset
\if :n < 2
INSERT INTO probe (k, v) VALUES ('n', 'small');
\elif :flag
INSERT INTO probe (k, v) VALUES ('flag', :flag);
\endif
END;
