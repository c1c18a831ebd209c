-- a branch not taken is not evaluated, errors and all
\if false
\set x 1 / 0
\set y :undefined + 1
\elif 1 = 1
\set z 3
\else
\set z 1 / 0
\endif
INSERT INTO probe (k, v) VALUES ('z', :z);
