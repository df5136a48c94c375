//! The dataset card: `README.md` in a published dataset, in the Hugging Face dataset-card
//! format (YAML front matter that hubs and `datasets` read, then a body for people), generated
//! from the manifest. The manifest records the card's SHA-256, so `dataset verify` fails when
//! the card is edited; the card never holds `created_at`, so identical builds have identical
//! cards.

use std::fmt::Write as _;

use crate::manifest::Manifest;

/// The card's file name in a dataset directory.
pub const CARD_FILE: &str = "README.md";

/// The licence a card declares when the build names none (Hugging Face's value for terms set
/// elsewhere).
pub const DEFAULT_LICENSE: &str = "other";

/// Whether `s` may be written as a card's `license` (lower-case letters, digits, `.`, `-`, `+`;
/// SPDX ids and Hugging Face licence names are of this shape).
pub fn valid_license(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+')
        })
}

/// Hugging Face's size category for a row count.
pub fn size_category(rows: u64) -> &'static str {
    const BOUNDS: [(u64, &str); 10] = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
        (10_000_000_000, "1B<n<10B"),
        (100_000_000_000, "10B<n<100B"),
        (1_000_000_000_000, "100B<n<1T"),
    ];
    BOUNDS
        .iter()
        .find(|(bound, _)| rows < *bound)
        .map_or("n>1T", |(_, label)| label)
}

/// Rows in the shards.
fn shard_rows(m: &Manifest) -> u64 {
    m.shards.iter().map(|s| s.rows).sum()
}

/// Renders the card of a manifest. Only what determines the dataset's content appears: not
/// `created_at`, the engine, the ledger's log head or a rebuild's lineage, so a rebuild, a distributed build and a
/// fresh embedded build of the same content have the same card.
pub fn render(m: &Manifest) -> String {
    let rows = shard_rows(m);
    let license = m.license.as_deref().unwrap_or(DEFAULT_LICENSE);
    let mut s = String::new();
    // Front matter: https://huggingface.co/docs/hub/datasets-cards (keys hubs and `datasets`
    // read). Every value is an id, a number or a fixed word: nothing needs YAML quoting but the
    // pretty name.
    let _ = write!(
        s,
        "---\nlicense: {license}\npretty_name: \"consentgate dataset {id}\"\ntask_categories:\n- text-generation\nsize_categories:\n- {size}\ntags:\n- consentgate\n- consent-gated\n- pii-redacted\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: shards/*.parquet\ndataset_info:\n  features:\n  - name: content_id\n    dtype: int64\n  - name: kind\n    dtype: string\n  - name: created_at\n    dtype: timestamp[us, tz=+00:00]\n  - name: text\n    dtype: string\n  splits:\n  - name: train\n    num_examples: {rows}\n---\n\n",
        id = m.dataset_id,
        size = size_category(rows),
    );
    let _ = writeln!(s, "# Dataset `{}`\n", m.dataset_id);
    let _ = writeln!(
        s,
        "Member content for the purpose `{purpose}`, as of `{as_of}`, decided by the policy \
         `{policy}` (hash `{hash}`) and built by consentgate {version}. \
         Every content row was decided; only rows decided `include` or `include_redacted` are \
         in the shards, and their text has passed the PII redaction engine. This card was \
         generated from `manifest.json`, which records its SHA-256.\n",
        purpose = m.purpose,
        as_of = m.as_of,
        policy = m.policy.name,
        hash = m.policy.hash,
        version = m.tool_version,
    );
    s.push_str("## Contents\n\n| | count |\n|---|---:|\n");
    let total: u64 = m.totals.values().sum();
    let members = m.member_commitment.as_ref().map_or(0, |c| c.members);
    let _ = writeln!(
        s,
        "| content rows decided | {total} |\n| rows in the shards | {rows} |\n| shards (one member's rows in one shard) | {} |\n| members with rows in the shards | {members} |",
        m.shards.len()
    );
    for (decision, n) in &m.totals {
        let _ = writeln!(s, "| rows decided `{decision}` | {n} |");
    }
    s.push_str("\n## Regions\n\nThe author's region at the cut-off; each row counted once.\n\n| region | included | included after redaction | excluded | why excluded (rows per reason) |\n|---|---:|---:|---:|---|\n");
    for r in &m.rows_by_region {
        let mut reasons: Vec<(&str, u64)> = m
            .counts
            .iter()
            .filter(|c| c.region == r.region && c.decision == "exclude")
            .map(|c| (c.reason.as_str(), c.rows))
            .collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let why: Vec<String> = reasons
            .iter()
            .map(|(reason, n)| format!("`{reason}` {n}"))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.region,
            r.include,
            r.include_redacted,
            r.exclude,
            if why.is_empty() {
                "–".to_owned()
            } else {
                why.join(", ")
            }
        );
    }
    if !m.ignored_purposes.is_empty() {
        let names: Vec<String> = m
            .ignored_purposes
            .iter()
            .map(|(p, n)| format!("`{p}` ({n})"))
            .collect();
        let _ = writeln!(
            s,
            "\nConsent events of other purposes were read and never decided anything: {}.",
            names.join(", ")
        );
    }
    s.push_str(
        "\n## Personal data\n\nNo member id is in the shards. The text of every kept row was redacted in one pass: \
         e-mail addresses (also obfuscated ones), phone numbers, URLs, IP addresses, payment card numbers, IBANs, \
         UK National Insurance and US Social Security numbers, @handles and person names became placeholders \
         (`<EMAIL>`, `<PHONE>`, `<PERSON>`, ...); names and handles of members whose content is excluded were \
         removed from everyone's text. Measured precision and recall: consentgate's `docs/redact.md`. \
         `consentgate report build DIR` counts the placeholders per type.\n",
    );
    s.push_str("\n## Fields\n\n| field | type | what |\n|---|---|---|\n| `content_id` | int64 | the platform's content id |\n| `kind` | string | the content kind (`post`, `comment`, `article`, ...) |\n| `created_at` | timestamp (µs, UTC) | when the member created it |\n| `text` | string | the text, redacted |\n");
    s.push_str("\n## Verify\n\n```sh\nconsentgate dataset verify .            # every file (this card included) against manifest.json\nconsentgate receipt verify RECEIPT.json  # a member's receipt: their content IS / is NOT here\n```\n");
    if m.ledger_checkpoint.is_some() {
        s.push_str("\nThe consent the build read is under the ledger checkpoint `manifest.json` names (`ledger_checkpoint`).\n");
    } else {
        s.push_str("\nThe build read consent from files, not from a ledger.\n");
    }
    if let Some(c) = &m.member_commitment {
        let _ = writeln!(
            s,
            "Receipts are proven against the member commitment root `{}` ({} members).",
            c.root, c.members
        );
    }
    s.push_str("\n## Load\n\n```python\nfrom datasets import load_dataset\nds = load_dataset(\"parquet\", data_files=\"shards/*.parquet\", split=\"train\")\n```\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_categories_follow_the_hubs_bounds() {
        assert_eq!(size_category(0), "n<1K");
        assert_eq!(size_category(999), "n<1K");
        assert_eq!(size_category(1_000), "1K<n<10K");
        assert_eq!(size_category(123_456), "100K<n<1M");
        assert_eq!(size_category(u64::MAX), "n>1T");
    }

    #[test]
    fn only_plain_licence_names_are_accepted() {
        for ok in ["other", "cc-by-4.0", "apache-2.0", "gpl-3.0+"] {
            assert!(valid_license(ok), "{ok}");
        }
        for bad in ["", "MIT", "a b", "x\ny: 1", "\"q\"", &"a".repeat(65)] {
            assert!(!valid_license(bad), "{bad:?}");
        }
    }
}
