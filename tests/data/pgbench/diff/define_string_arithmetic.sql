-- diff: args=-D s=hello
-- a -D string used in arithmetic: a malformed variable
INSERT INTO probe (k, v) VALUES ('before', 1);
\set x :s + 1
