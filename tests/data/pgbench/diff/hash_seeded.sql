-- hash(), hash_murmur2(), hash_fnv1a() with an explicit seed
\set a hash(10, 5)
\set b hash_murmur2(10, 5)
\set c hash_fnv1a(10, 5)
\set d hash_murmur2(-1, 0)
\set e hash_fnv1a(9223372036854775807, -7)
\set f abs(hash(12345, 1)) % 100
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
INSERT INTO probe (k, v) VALUES ('f', :f);
