-- diff: query-modes=simple,extended,prepared
-- doubles and integers as pgbench prints them into SQL
\set a 1.0 / 3
\set b 2.0
\set c 1e20
\set d 123456789.125
\set e 9223372036854775807
\set f -9223372036854775808
\set g 0.1 + 0.2
\set h 1e-7
\set i -0.0
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
INSERT INTO probe (k, v) VALUES ('f', :f);
INSERT INTO probe (k, v) VALUES ('g', :g);
INSERT INTO probe (k, v) VALUES ('h', :h);
INSERT INTO probe (k, v) VALUES ('i', :i);
