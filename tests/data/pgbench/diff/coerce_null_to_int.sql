-- NULL in arithmetic gives NULL, no error
INSERT INTO probe (k, v) VALUES ('before', 1);
\set i NULL + 1
INSERT INTO probe (k, v) VALUES ('i', :i);
