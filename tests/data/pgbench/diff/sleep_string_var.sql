-- diff: args=-D t=abc
-- \sleep :var whose value is no integer
INSERT INTO probe (k, v) VALUES ('before', 1);
\sleep :t ms
