-- diff: args=--random-seed=42
-- hash functions and permute() with the default seed, fixed by --random-seed
\set a hash(10)
\set b hash_murmur2(10)
\set c hash_fnv1a(10)
\set d permute(3, 100)
\set e :default_seed
\set f :random_seed
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
INSERT INTO probe (k, v) VALUES ('d', :d);
INSERT INTO probe (k, v) VALUES ('e', :e);
INSERT INTO probe (k, v) VALUES ('f', :f);
