-- "cannot coerce boolean to int"
INSERT INTO probe (k, v) VALUES ('before', 1);
\set i TRUE + 2
INSERT INTO probe (k, v) VALUES ('i', :i);
