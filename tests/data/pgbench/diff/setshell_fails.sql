-- \setshell whose command fails: the transaction fails
INSERT INTO probe (k, v) VALUES ('before', 1);
\setshell v false
INSERT INTO probe (k, v) VALUES ('after', :v);
