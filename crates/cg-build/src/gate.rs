//! [`Gate`]: the per-row decision, shared by the UDFs of one build. Cedar runs once per
//! distinct attribute tuple; every further row is a hash lookup. A row carries its verdict
//! through the plan as a self-describing `u32` ([`Verdict::code`]), the same in every process, so
//! a distributed build's executors and its client agree on it.

use std::sync::{Arc, Mutex};

use cg_model::{Decision, Jurisdiction, ReasonCode, Timestamp, Verdict};
use cg_policy::{Decided, EvalContext, ItemFacts, MemberFacts, Policy, most_protective};
use rustc_hash::FxHashMap;
use sha2::Digest;

use crate::facts::{Member, Members};

#[derive(Debug, Default)]
struct Memo {
    tuples: FxHashMap<u64, Decided>,
    member_excluded: FxHashMap<i64, bool>,
}

/// Everything the UDFs need to decide and redact a row.
#[derive(Debug)]
pub struct Gate {
    policy: Arc<Policy>,
    ctx: EvalContext,
    members: Members,
    memo: Mutex<Memo>,
    redactor: cg_redact::Redactor,
    quarantine: bool,
    /// Report region of each member at the cut-off, computed once.
    regions: FxHashMap<i64, &'static str>,
}

/// One content row as the UDFs see it.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// Content id (for error messages).
    pub content_id: i64,
    /// Author.
    pub member_id: Option<i64>,
    /// Kind.
    pub kind: Option<&'a str>,
    /// Creation time.
    pub created_at: Option<Timestamp>,
}

impl Gate {
    /// A gate for one build.
    pub fn new(
        policy: Arc<Policy>,
        ctx: EvalContext,
        members: Members,
        quarantine: bool,
    ) -> Result<Gate, cg_redact::RedactError> {
        let flags = policy.config().region_flags();
        let regions = members
            .iter()
            .map(|(id, m)| {
                let label = Jurisdiction::normalize(m.country_at(ctx.as_of))
                    .map_or("UNKNOWN", |j| j.regions(flags).report_label());
                (*id, label)
            })
            .collect();
        Ok(Gate {
            policy,
            ctx,
            members,
            memo: Mutex::new(Memo::default()),
            redactor: cg_redact::Redactor::new()?,
            quarantine,
            regions,
        })
    }

    fn facts<'m>(&self, m: &'m Member, created_at: Timestamp) -> MemberFacts<'m> {
        MemberFacts {
            country_at_creation: m.country_at(created_at),
            country_at_cutoff: m.country_at(self.ctx.as_of),
            birth_date: m.birth_date,
            consent: m.consent.clone(),
            other_purpose_grant: m.other_purpose_grant,
            erased_at: m.erased_at,
            notice_delivered_at: m.notice_at,
        }
    }

    fn decide_item(&self, memo: &mut Memo, item: &ItemFacts<'_>) -> Verdict {
        match self.policy.tuples(item, &self.ctx) {
            Err(v) => v,
            Ok(tuples) => {
                let decided: Vec<Decided> = tuples
                    .iter()
                    .map(|t| {
                        memo.tuples
                            .entry(t.key())
                            .or_insert_with(|| self.policy.evaluate_tuple(t, &self.ctx.purpose))
                            .clone()
                    })
                    .collect();
                most_protective(decided).verdict
            }
        }
    }

    /// Whether a member is excluded for the purpose at the cut-off (their own post, made now,
    /// would be excluded). Unknown members count as excluded: their consent cannot be shown.
    fn member_excluded(&self, memo: &mut Memo, id: i64) -> bool {
        if let Some(x) = memo.member_excluded.get(&id) {
            return *x;
        }
        let excluded = match self.members.get(&id) {
            None => true,
            Some(m) => {
                let item = ItemFacts {
                    kind: "post",
                    created_at: self.ctx.as_of,
                    member: Some(self.facts(m, self.ctx.as_of)),
                };
                self.decide_item(memo, &item).decision() == Decision::Exclude
            }
        };
        memo.member_excluded.insert(id, excluded);
        excluded
    }

    /// Decides a batch of rows; `mentions[i]` are the members row `i` names. Returns verdict
    /// codes. A malformed row fails the build, or with quarantine is `invalid_record`.
    pub fn decide(&self, rows: &[Row<'_>], mentions: &[Vec<i64>]) -> Result<Vec<u32>, String> {
        let mut memo = self
            .memo
            .lock()
            .map_err(|_| "decision memo poisoned".to_owned())?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let verdict = match (r.member_id, r.kind, r.created_at) {
                (Some(member_id), Some(kind), Some(created_at)) => {
                    let member = self
                        .members
                        .get(&member_id)
                        .map(|m| self.facts(m, created_at));
                    let item = ItemFacts {
                        kind,
                        created_at,
                        member,
                    };
                    let v = self.decide_item(&mut memo, &item);
                    let named_excluded = v.decision().is_kept()
                        && mentions[i]
                            .iter()
                            .any(|m| *m != member_id && self.member_excluded(&mut memo, *m));
                    if named_excluded {
                        let mut reasons = v.reasons().to_vec();
                        reasons.push(ReasonCode::MentionRedacted);
                        Verdict::from_reasons(reasons)
                    } else {
                        v
                    }
                }
                _ if self.quarantine => Verdict::exclude(ReasonCode::InvalidRecord),
                (m, k, _) => {
                    let column = if m.is_none() {
                        "member_id"
                    } else if k.is_none() {
                        "kind"
                    } else {
                        "created_at"
                    };
                    return Err(format!(
                        "content_id {}: column `{column}` is missing a value (use --quarantine to exclude such rows)",
                        r.content_id
                    ));
                }
            };
            out.push(verdict.code());
        }
        Ok(out)
    }

    /// The verdict of a code from [`Gate::decide`] (`None` for a value no verdict has).
    pub fn outcome(&self, code: u32) -> Option<Verdict> {
        Verdict::from_code(code)
    }

    /// The redacted text of a kept row: the PII engine with the author's country as phone hint,
    /// then the names and handles of excluded members the row mentions.
    pub fn redact(
        &self,
        text: &str,
        member_id: i64,
        mentions: &[i64],
        outcome: &Verdict,
    ) -> Option<String> {
        if !outcome.decision().is_kept() {
            return None;
        }
        let hint = self
            .members
            .get(&member_id)
            .and_then(|m| Jurisdiction::normalize(m.country_at(self.ctx.as_of)).ok())
            .map(|j| j.country().as_str().to_owned());
        let mut out = self
            .redactor
            .redact(text, hint.as_deref(), cg_redact::Replacement::Placeholder)
            .into_owned();
        if outcome.reasons().contains(&ReasonCode::MentionRedacted) {
            let excluded: Vec<&Member> = {
                let Ok(mut memo) = self.memo.lock() else {
                    return None;
                };
                mentions
                    .iter()
                    .filter(|m| **m != member_id && self.member_excluded(&mut memo, **m))
                    .filter_map(|m| self.members.get(m))
                    .collect()
            };
            for m in excluded {
                if let Some(h) = &m.handle {
                    out = scrub(&out, h, "<MENTION>");
                }
                if let Some(n) = &m.display_name {
                    out = scrub(&out, n, "<PERSON>");
                }
            }
        }
        Some(out)
    }

    /// What a kept row's redacted text depends on besides the row itself: the author's
    /// phone-hint country at the cut-off, and the handles and names scrubbed for the excluded
    /// members it mentions (in order; only when the verdict has `mention_redacted`). 0 for a row that is not kept. Stored in
    /// `decisions.parquet`, so an incremental rebuild can tell which shards must be rewritten.
    pub fn redaction_fingerprint(
        &self,
        member_id: i64,
        mentions: &[i64],
        outcome: &Verdict,
    ) -> i64 {
        if !outcome.decision().is_kept() {
            return 0;
        }
        let mut h = sha2::Sha256::new();
        h.update([1]);
        let hint = self
            .members
            .get(&member_id)
            .and_then(|m| Jurisdiction::normalize(m.country_at(self.ctx.as_of)).ok())
            .map(|j| j.country().as_str().to_owned());
        h.update(hint.as_deref().unwrap_or("-"));
        if outcome.reasons().contains(&ReasonCode::MentionRedacted) {
            // A poisoned memo cannot say who is excluded: a value no parent has makes a rebuild
            // rewrite the row's shard (the safe direction).
            let Ok(mut memo) = self.memo.lock() else {
                return i64::MIN;
            };
            for m in mentions {
                if *m != member_id && self.member_excluded(&mut memo, *m) {
                    let member = self.members.get(m);
                    h.update([2]);
                    h.update(member.and_then(|x| x.handle.as_deref()).unwrap_or(""));
                    h.update([3]);
                    h.update(member.and_then(|x| x.display_name.as_deref()).unwrap_or(""));
                }
            }
        }
        let d = h.finalize();
        let mut x = [0u8; 8];
        x.copy_from_slice(&d[..8]);
        i64::from_le_bytes(x)
    }

    /// Whether the member asked for erasure on or before the cut-off.
    pub fn erasure_requested(&self, member_id: Option<i64>) -> bool {
        member_id
            .and_then(|m| self.members.get(&m))
            .and_then(|m| m.erasure_requested_at)
            .is_some_and(|t| t <= self.ctx.as_of)
    }

    /// The report region of a member at the cut-off (`EU`, `UK`, ..., `ROW`, or `UNKNOWN`).
    pub fn region(&self, member_id: Option<i64>) -> &'static str {
        member_id
            .and_then(|id| self.regions.get(&id).copied())
            .unwrap_or("UNKNOWN")
    }
}

/// Replaces whole-word, ASCII-case-insensitive occurrences of `needle` in `text`.
fn scrub(text: &str, needle: &str, with: &str) -> String {
    let needle = needle.trim();
    if needle.chars().count() < 2 {
        return text.to_owned();
    }
    let lower_text = text.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(i) = lower_text[from..].find(&lower_needle) {
        let start = from + i;
        let end = start + lower_needle.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = text[end..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            out.push_str(&text[last..start]);
            out.push_str(with);
            last = end;
        }
        from = end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrub_whole_words_only() {
        assert_eq!(
            scrub("Thanks Anna Müller and anna müller!", "Anna Müller", "<P>"),
            "Thanks <P> and <P>!"
        );
        assert_eq!(
            scrub("annamuller12 vs annamuller1", "annamuller1", "<M>"),
            "annamuller12 vs <M>"
        );
    }
}
