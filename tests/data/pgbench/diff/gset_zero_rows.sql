-- \gset on a query returning no row fails the transaction
INSERT INTO probe (k, v) VALUES ('before', 1);
SELECT 1 AS a WHERE false \gset
INSERT INTO probe (k, v) VALUES ('after', 2);
