-- an integer constant beyond int64 is refused at parse time
INSERT INTO probe (k, v) VALUES ('before', 1);
\set i 100000000000000000000
