-- \if without \endif: refused before running
INSERT INTO probe (k, v) VALUES ('x', 1);
\if 1
INSERT INTO probe (k, v) VALUES ('y', 1);
