-- \gset followed by more text on its line is refused at parse time
INSERT INTO probe (k, v) VALUES ('x', 1);
SELECT 1 AS a \gset SELECT 2;
