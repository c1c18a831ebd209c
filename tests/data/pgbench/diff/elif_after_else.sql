-- \elif after \else: refused before running
INSERT INTO probe (k, v) VALUES ('x', 1);
\if 1
\else
\elif 2
\endif
