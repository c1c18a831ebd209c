-- a script creating the table it then writes
CREATE TABLE diff_t (x int);
INSERT INTO diff_t VALUES (3), (4);
INSERT INTO probe (k, v) SELECT 'sum', sum(x) FROM diff_t;
