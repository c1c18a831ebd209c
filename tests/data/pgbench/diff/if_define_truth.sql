-- diff: args=-D yes=YES -D off=off -D t=t -D one=1 -D zero=0
-- -D values read as booleans by \if (pgbench's prefix rules)
\if :yes
INSERT INTO probe (k, v) VALUES ('yes', 'true');
\endif
\if :off
INSERT INTO probe (k, v) VALUES ('off', 'true');
\endif
\if :t
INSERT INTO probe (k, v) VALUES ('t', 'true');
\endif
\if :one
INSERT INTO probe (k, v) VALUES ('one', 'true');
\endif
\if :zero
INSERT INTO probe (k, v) VALUES ('zero', 'true');
\endif
INSERT INTO probe (k, v) VALUES ('end', 1);
