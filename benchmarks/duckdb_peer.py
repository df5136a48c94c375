"""The peer: the same gate in DuckDB SQL, as a team without consentgate would write it.

Usage: duckdb_peer.py CORPUS_DIR AS_OF OUT.parquet  -> prints "seconds text_mb kept_rows".
Simplifications (in the peer's favour): country codes are not normalised beyond upper/trim,
residence history, notices and GPC are ignored, and redaction is a regexp_replace chain.
"""
import sys
import time

import duckdb

corpus, as_of, out = sys.argv[1:4]
con = duckdb.connect()
con.execute("PRAGMA threads=2")
suspended = "'AT','BE','BG','CY','CZ','DE','DK','EE','ES','FI','FR','GR','HR','HU','IE','IT','LT','LU','LV','MT','NL','PL','PT','RO','SE','SI','SK','IS','LI','NO','CH','GB','UK','CA','HK'"
text_mb = con.execute(f"SELECT sum(strlen(text)) / 1e6 FROM read_parquet('{corpus}/content.parquet')").fetchone()[0]
start = time.time()
con.execute(f"""
COPY (
  WITH last AS (
    SELECT member_id, arg_max(granted, ts) AS granted
    FROM read_parquet('{corpus}/consent.parquet')
    WHERE purpose = 'genai_training' AND ts <= TIMESTAMPTZ '{as_of}'
    GROUP BY member_id),
  erased AS (SELECT DISTINCT member_id FROM read_parquet('{corpus}/erasures.parquet') WHERE ts <= TIMESTAMPTZ '{as_of}')
  SELECT c.content_id, c.kind, c.created_at,
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(c.text,
      '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{{2,}}', '<EMAIL>', 'g'),
      '(https?://|www\\.)[^\\s]+', '<URL>', 'g'),
      '(?:[0-9]{{1,3}}\\.){{3}}[0-9]{{1,3}}', '<IP_ADDRESS>', 'g'),
      '[A-Z]{{2}}[0-9]{{2}}(?: ?[A-Z0-9]){{11,30}}', '<IBAN_CODE>', 'g'),
      '\\+?[0-9][0-9 ().-]{{6,}}[0-9]', '<PHONE>', 'g') AS text
  FROM read_parquet('{corpus}/content.parquet') c
  JOIN read_parquet('{corpus}/members.parquet') m USING (member_id)
  LEFT JOIN last l USING (member_id)
  WHERE c.created_at <= TIMESTAMPTZ '{as_of}'
    AND c.kind IN ('post', 'comment', 'article', 'group_message', 'profile')
    AND m.country IS NOT NULL AND upper(trim(m.country)) NOT IN ({suspended}, 'EU', 'XX', 'ZZ', '', 'N/A')
    AND m.birth_date IS NOT NULL
    AND date_diff('year', m.birth_date, CAST(c.created_at AS DATE)) >= 18
    AND date_diff('year', m.birth_date, DATE '{as_of}') >= 18
    AND (m.closed_at IS NULL OR m.closed_at > TIMESTAMPTZ '{as_of}')
    AND member_id NOT IN (SELECT member_id FROM erased)
    AND coalesce(l.granted, true)
  ORDER BY c.content_id
) TO '{out}' (FORMAT parquet)
""")
seconds = time.time() - start
kept = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(f"{seconds:.3f} {text_mb:.1f} {kept}")
