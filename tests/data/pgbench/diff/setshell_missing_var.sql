-- \setshell without a variable and a command: refused at parse time
INSERT INTO probe (k, v) VALUES ('before', 1);
\setshell v
