-- \setshell reads an integer from a command; \shell runs one; :var arguments
\set n 7
\setshell a echo 42
\setshell b expr :n + 3
\shell true
\set c :a + :b
INSERT INTO probe (k, v) VALUES ('a', :a);
INSERT INTO probe (k, v) VALUES ('b', :b);
INSERT INTO probe (k, v) VALUES ('c', :c);
