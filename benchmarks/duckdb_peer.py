"""The peer: the same gate in DuckDB SQL, as a team without consentgate would write it.

Usage: duckdb_peer.py CORPUS_DIR AS_OF OUT.parquet  -> prints "seconds text_mb kept_rows".

The gate follows the bundled timeline (DOMAIN.md): the regime in force at AS_OF decides which
regions are suspended (li-2024-pre: EU, EEA, CH; li-2024-09: also UK, CA, HK; li-2025-11: none,
everyone opt-out). A member's country at the item's creation and at AS_OF comes from the
residence history, else from the members row; both must be known (an ISO country, after the
gate's aliases and territories) and neither suspended. The history is one list of moves per
member, joined by member id: an ASOF JOIN sorted every content row with its text and took ~6 s
more and 5 GiB at 10 M rows. Opt-out is the latest choice for the purpose at AS_OF (a GPC
signal counts as an objection until an explicit choice follows it), erasure or a closed
account excludes, both ages (at creation and at AS_OF) must be at least 18 in full years, and
only the included kinds pass.

Simplifications (in the peer's favour): notices, notice versions and consent for other
purposes are ignored (the default config needs none of them); mentions of excluded members are
not scrubbed; and redaction is a regexp_replace chain. benchmarks/run.sh counts where the two
tools' kept rows differ, so the comparison says how close the peer came.
"""
import sys
import time

import duckdb

corpus, as_of, out = sys.argv[1:4]
con = duckdb.connect()
con.execute("PRAGMA threads=2")
con.execute("SET TimeZone = 'UTC'")

EU = "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
EEA = EU + "IS LI NO".split()
# The regimes of the bundled timeline, newest first: (first day, suspended countries).
REGIMES = [
    ("2025-11-03", []),
    ("2024-09-18", EEA + ["CH", "GB", "CA", "HK"]),
    ("0001-01-01", EEA + ["CH"]),
]
suspended = next(codes for start, codes in REGIMES if as_of[:10] >= start)
# An empty list still has to be valid SQL (and NOT IN (NULL) would drop every row).
suspended_sql = ", ".join(f"'{c}'" for c in suspended) or "'-'"
consent_columns = {r[0] for r in con.execute(
    f"DESCRIBE SELECT * FROM read_parquet('{corpus}/consent.parquet')").fetchall()}
gpc_grant = "source = 'gpc' AND granted" if "source" in consent_columns else "false"
gpc_signal = "source = 'gpc'" if "source" in consent_columns else "false"

# ISO 3166-1 alpha-2, as a team's reference table would hold it.
ISO_3166_1 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW
""".split()
iso_sql = ", ".join(f"'{c}'" for c in ISO_3166_1)
# A code as the gate reads it: upper-cased and trimmed, an optional subdivision (`US-CA`: one to
# three letters or digits) dropped, aliases and the EU's outermost regions mapped to their
# country (UK → GB, EL → GR, RE → FR, IC → ES, AX → FI, ...; Gibraltar and the crown
# dependencies count as UK); NULL for groups (EU), Kosovo's user-assigned XK, and anything that
# is not an ISO country.
con.execute(f"""
CREATE MACRO head(c) AS split_part(upper(trim(c)), '-', 1);
CREATE MACRO norm(c) AS (
  CASE
    WHEN c IS NULL OR NOT regexp_full_match(upper(trim(c)), '[^-]*(-[A-Z0-9]{{1,3}})?') THEN NULL
    WHEN head(c) IN ('UK', 'XI', 'GI', 'JE', 'GG', 'IM') THEN 'GB'
    WHEN head(c) = 'EL' THEN 'GR'
    WHEN head(c) IN ('GF', 'GP', 'MF', 'MQ', 'RE', 'YT') THEN 'FR'
    WHEN head(c) IN ('EA', 'IC') THEN 'ES'
    WHEN head(c) = 'AX' THEN 'FI'
    WHEN head(c) = 'SJ' THEN 'NO'
    WHEN head(c) IN ({iso_sql}) THEN head(c)
    ELSE NULL
  END);
""")
text_mb = con.execute(f"SELECT sum(strlen(text)) / 1e6 FROM read_parquet('{corpus}/content.parquet')").fetchone()[0]
start = time.time()
con.execute(f"""
COPY (
  WITH history AS (
    SELECT member_id,
      list(struct_pack(valid_from := valid_from, country := norm(country)) ORDER BY valid_from) AS moves
    FROM read_parquet('{corpus}/residences.parquet') GROUP BY member_id),
  at_cutoff AS (
    SELECT member_id, norm(arg_max_null(country, valid_from)) AS country, true AS moved
    FROM read_parquet('{corpus}/residences.parquet')
    WHERE valid_from <= TIMESTAMPTZ '{as_of}' GROUP BY member_id),
  choice AS (
    SELECT member_id, arg_max(CASE WHEN {gpc_signal} THEN false ELSE granted END, ts) AS granted
    FROM read_parquet('{corpus}/consent.parquet')
    WHERE purpose = 'genai_training' AND ts <= TIMESTAMPTZ '{as_of}' AND NOT ({gpc_grant})
    GROUP BY member_id),
  erased AS (
    SELECT DISTINCT member_id FROM read_parquet('{corpus}/erasures.parquet')
    WHERE ts <= TIMESTAMPTZ '{as_of}'),
  -- Member-level rules first (a million rows, not ten), then the item-level ones.
  members AS (
    SELECT m.member_id, norm(m.country) AS country, m.birth_date, m.closed_at,
      CASE WHEN a.moved THEN a.country ELSE norm(m.country) END AS country_now
    FROM read_parquet('{corpus}/members.parquet') m LEFT JOIN at_cutoff a USING (member_id)
      LEFT JOIN choice l USING (member_id)
    WHERE m.birth_date IS NOT NULL
      AND (m.closed_at IS NULL OR m.closed_at > TIMESTAMPTZ '{as_of}')
      AND m.member_id NOT IN (SELECT member_id FROM erased)
      AND coalesce(l.granted, true)
      AND date_sub('year', m.birth_date, CAST(TIMESTAMPTZ '{as_of}' AS DATE)) >= 18),
  items AS (
    SELECT c.content_id, c.member_id, c.kind, c.created_at, c.text,
      CASE WHEN h.moves IS NULL OR h.moves[1].valid_from > c.created_at THEN m.country
        ELSE list_filter(h.moves, lambda x: x.valid_from <= c.created_at)[-1].country
      END AS country_then,
      m.country_now, m.birth_date
    FROM read_parquet('{corpus}/content.parquet') c
    JOIN members m USING (member_id)
    LEFT JOIN history h USING (member_id))
  SELECT i.content_id, i.kind, i.created_at,
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(i.text,
      '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{{2,}}', '<EMAIL>', 'g'),
      '(https?://|www\\.)[^\\s]+', '<URL>', 'g'),
      '(?:[0-9]{{1,3}}\\.){{3}}[0-9]{{1,3}}', '<IP_ADDRESS>', 'g'),
      '[A-Z]{{2}}[0-9]{{2}}(?: ?[A-Z0-9]){{11,30}}', '<IBAN_CODE>', 'g'),
      '\\+?[0-9][0-9 ().-]{{6,}}[0-9]', '<PHONE>', 'g') AS text
  FROM items i
  WHERE i.created_at <= TIMESTAMPTZ '{as_of}'
    AND i.kind IN ('post', 'comment', 'article', 'group_message', 'profile')
    AND i.country_then IS NOT NULL AND i.country_now IS NOT NULL
    AND i.country_then NOT IN ({suspended_sql}) AND i.country_now NOT IN ({suspended_sql})
    AND date_sub('year', i.birth_date, CAST(i.created_at AS DATE)) >= 18
  ORDER BY i.content_id
) TO '{out}' (FORMAT parquet)
""")
seconds = time.time() - start
kept = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(f"{seconds:.3f} {text_mb:.1f} {kept}")
