-- diff: args=-D s=maybe
-- a -D value that is no boolean, int or double cannot be tested
INSERT INTO probe (k, v) VALUES ('before', 1);
\if :s
INSERT INTO probe (k, v) VALUES ('then', 1);
\endif
