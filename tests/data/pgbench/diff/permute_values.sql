-- permute() with an explicit seed, and its edge cases
\set a permute(0, 10, 5)
\set b permute(9, 10, 5)
\set c permute(3, 1000000, 12345)
\set d permute(12, 10, 5)
\set e permute(-1, 10, 5)
\set f permute(0, 1, 99)
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
INSERT INTO probe (k, v) VALUES ('f', :f);
