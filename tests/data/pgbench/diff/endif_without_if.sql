-- \endif without \if: refused before running
INSERT INTO probe (k, v) VALUES ('x', 1);
\if 1
\endif
\endif
