-- \gset of an unnamed column: "?column?" is not a variable name
INSERT INTO probe (k, v) VALUES ('x', 1);
SELECT 1 \gset
