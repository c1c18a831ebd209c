-- aggregate: sum, average and count over a range of 1,000 accounts (index range scan)
\set first random(1, 100000 * :scale - 999)
SELECT count(*), sum(abalance), avg(abalance)
  FROM pgbench_accounts
 WHERE aid BETWEEN :first AND :first + 999;
