-- diff: dbload-modes=sequential,async,threads,processes
-- debug() prints its argument on stderr and returns it, numbering commands from 1
\set a debug(1 + 2)
\set b debug(1.5 * 2)
\set c debug(true)
\set d debug(NULL)
\set e debug(1.0 / 0)
\if debug(:a > 2)
\set f debug(:a * 2)
\endif
INSERT INTO probe (k, v) VALUES ('f', :f);
