-- \sleep with a variable, an attached unit, a negative amount and each unit
\set t 1
\sleep :t ms
\sleep 2ms
\sleep -5 ms
\sleep 0
\sleep 3 us
\sleep :t us
\sleep +1ms
INSERT INTO probe (k, v) VALUES ('slept', 1);
