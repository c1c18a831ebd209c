-- IS [NOT] NULL | TRUE | FALSE, ISNULL, NOTNULL
\set a NULL IS NULL
\set b 1 IS NOT NULL
\set c true IS TRUE
\set d false IS NOT FALSE
\set e NULL ISNULL
\set f 1 NOTNULL
\set g NULL IS TRUE
\set h NULL IS NOT FALSE
\set i 0 IS NULL
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
INSERT INTO probe (k, v) VALUES ('f', :f);
INSERT INTO probe (k, v) VALUES ('g', :g);
INSERT INTO probe (k, v) VALUES ('h', :h);
INSERT INTO probe (k, v) VALUES ('i', :i);
