-- 64-bit edges that pgbench 15 computes without an error
\set a abs(-9223372036854775808)
\set b -9223372036854775808 >> -1
\set c 1 >> -1
\set d 1 << -1
\set e 1 << 63
\set f ~0
\set g ~(-9223372036854775808)
\set h 5 | 3
\set i 5 & 3
\set j 5 # 3
\set k -9223372036854775808 | 1
\set l 9223372036854775807 | -9223372036854775808
\set m -8 >> 1
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
INSERT INTO probe (k, v) VALUES ('f', :f);
INSERT INTO probe (k, v) VALUES ('g', :g);
INSERT INTO probe (k, v) VALUES ('h', :h);
INSERT INTO probe (k, v) VALUES ('i', :i);
INSERT INTO probe (k, v) VALUES ('j', :j);
INSERT INTO probe (k, v) VALUES ('k', :k);
INSERT INTO probe (k, v) VALUES ('l', :l);
INSERT INTO probe (k, v) VALUES ('m', :m);
