-- \sleep takes an integer only
INSERT INTO probe (k, v) VALUES ('before', 1);
\sleep 1.5 ms
