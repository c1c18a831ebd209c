-- diff: args=-Dö=5
-- a -D variable with a name beyond ASCII
\set y :ö + 1
INSERT INTO probe (k, v) VALUES ('ö', :ö);
INSERT INTO probe (k, v) VALUES ('y', :y);
