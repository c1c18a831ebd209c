-- diff: query-modes=prepared,simple
-- diff: dbload-modes=sequential,async,threads
-- nested \if / \elif / \else / \endif, each branch leaving a mark
\set x 2
\if :x = 1
INSERT INTO probe (k, v) VALUES ('branch', 'one');
\elif :x = 2
  \if :x > 5
INSERT INTO probe (k, v) VALUES ('branch', 'big');
  \elif false
INSERT INTO probe (k, v) VALUES ('branch', 'never');
  \else
INSERT INTO probe (k, v) VALUES ('branch', 'two-small');
  \endif
INSERT INTO probe (k, v) VALUES ('branch', 'two');
\else
INSERT INTO probe (k, v) VALUES ('branch', 'other');
\endif
\if 0
\elif 0
\else
  \if 1
INSERT INTO probe (k, v) VALUES ('branch', 'else-then');
  \endif
\endif
INSERT INTO probe (k, v) VALUES ('end', 1);
