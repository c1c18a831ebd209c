-- \else with no \if: refused before running
INSERT INTO probe (k, v) VALUES ('x', 1);
\else
