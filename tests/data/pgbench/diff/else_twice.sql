-- two \else in one \if: refused before running
INSERT INTO probe (k, v) VALUES ('x', 1);
\if 1
\else
\else
\endif
