-- a double constant beyond the double range is refused at parse time
INSERT INTO probe (k, v) VALUES ('before', 1);
\set d 1.0E309
