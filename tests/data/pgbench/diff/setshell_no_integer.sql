-- \setshell whose command prints no integer: the transaction fails
INSERT INTO probe (k, v) VALUES ('before', 1);
\setshell v echo hello
INSERT INTO probe (k, v) VALUES ('after', :v);
