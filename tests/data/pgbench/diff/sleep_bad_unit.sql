-- \sleep with an unknown unit is refused at parse time
INSERT INTO probe (k, v) VALUES ('before', 1);
\sleep 1 min
