-- SQL over several lines and two statements on one line
INSERT INTO probe (k, v)
  VALUES ('multi',
          'line');
INSERT INTO probe (k, v) VALUES ('one', 1); INSERT INTO probe (k, v) VALUES ('two', 2);
\set x 3
INSERT INTO probe (k, v) VALUES ('x', :x)
