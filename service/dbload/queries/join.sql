-- join: one account with its branch and the branch's tellers' total balance
\set aid random(1, 100000 * :scale)
SELECT a.aid, a.abalance, b.bbalance, sum(t.tbalance) AS tellers_balance
  FROM pgbench_accounts a
  JOIN pgbench_branches b ON b.bid = a.bid
  JOIN pgbench_tellers t ON t.bid = b.bid
 WHERE a.aid = :aid
 GROUP BY a.aid, a.abalance, b.bbalance;
