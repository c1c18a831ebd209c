-- diff: query-modes=simple,extended,prepared
-- a script's own PREPARE / EXECUTE
PREPARE diff_p(text, text) AS INSERT INTO probe (k, v) VALUES ($1, $2);
EXECUTE diff_p('p', 'one');
EXECUTE diff_p('q', 'two');
DEALLOCATE diff_p;
INSERT INTO probe (k, v) VALUES ('done', 1);
