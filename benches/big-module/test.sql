-- A smoke test for sqlite.wasm: `myriad run sqlite.wasm < test.sql`.
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
  INSERT INTO t(name, score) SELECT 'name' || i, (i * 7919) % 1000 / 10.0 FROM n;
CREATE INDEX t_score ON t(score);
SELECT count(*) AS rows, sum(score) AS total, max(name) AS last FROM t;
SELECT id, name, score FROM t WHERE score > 99.8 ORDER BY id LIMIT 3;
SELECT json_object('a', 1, 'b', json_array(2, 3)) AS json;
SELECT round(sqrt(2.0), 6) AS root2, printf('%08.3f', pi()) AS pi;
CREATE VIRTUAL TABLE docs USING fts5(body);
INSERT INTO docs(body) VALUES ('the quick brown fox'), ('jumps over the lazy dog'), ('a quick test');
SELECT rowid, body FROM docs WHERE docs MATCH 'quick' ORDER BY rowid;
SELECT group_concat(name, ',') AS names FROM (SELECT name FROM t ORDER BY score DESC, id LIMIT 4);
