-- a script creating the function it then calls
CREATE FUNCTION diff_twice(x int) RETURNS int LANGUAGE sql AS 'SELECT 2 * x';
INSERT INTO probe (k, v) VALUES ('f', diff_twice(21));
SELECT diff_twice(5) AS y \gset
INSERT INTO probe (k, v) VALUES ('y', :y);
