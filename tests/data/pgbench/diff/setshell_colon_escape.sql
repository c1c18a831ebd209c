-- \setshell: '::' stands for a literal ':' (so ::5 prints ":5", no integer)
INSERT INTO probe (k, v) VALUES ('before', 1);
\setshell v echo ::5
