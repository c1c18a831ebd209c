-- \setshell with a :var argument that is not defined
INSERT INTO probe (k, v) VALUES ('before', 1);
\setshell v echo :nope
