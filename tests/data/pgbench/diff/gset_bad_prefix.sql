-- \gset with a prefix that makes no variable name
INSERT INTO probe (k, v) VALUES ('before', 1);
SELECT 1 AS a \gset 9
