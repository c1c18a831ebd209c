-- 64-bit overflow in * fails the transaction
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x -9223372036854775808 * -1
