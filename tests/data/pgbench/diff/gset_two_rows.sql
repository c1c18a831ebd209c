-- \gset on a query returning two rows fails the transaction
INSERT INTO probe (k, v) VALUES ('before', 1);
SELECT g AS a FROM generate_series(1, 2) AS g \gset
INSERT INTO probe (k, v) VALUES ('after', 2);
