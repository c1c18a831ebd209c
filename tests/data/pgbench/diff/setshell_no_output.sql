-- \setshell whose command prints nothing
INSERT INTO probe (k, v) VALUES ('before', 1);
\setshell v true
INSERT INTO probe (k, v) VALUES ('after', :v);
