-- diff: args=-D s=hello -D b=on -D i=12 -D d=1.5
-- -D values used as strings in SQL, as numbers in \set and as booleans
\set x :i + 1
\set y :d * 2
\set z :b AND true
INSERT INTO probe (k, v) VALUES ('s', :s);
INSERT INTO probe (k, v) VALUES ('i', :i);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('x', :x);
INSERT INTO probe (k, v) VALUES ('y', :y);
INSERT INTO probe (k, v) VALUES ('z', :z);
