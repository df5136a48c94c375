//! Content items as a pure function of `(seed, content id)`: an author (skewed towards power
//! users, a few unknown), a kind, a creation time after the author's sign-up, and English text
//! with personal data inserted at known character offsets.

use std::sync::LazyLock;

use cg_model::Timestamp;

use crate::members::{self, CONTENT_END, CONTENT_START, Member, ts};
use crate::pii::{self, PiiType};
use crate::rng::{Rng, Stream, Weighted};
use crate::vocab::{FILLERS, MESSAGE_LINES, OPENERS, TOPICS};

static KINDS: LazyLock<Weighted<&'static str>> = LazyLock::new(|| {
    Weighted::new([
        ("post", 450),
        ("comment", 300),
        ("article", 50),
        ("group_message", 50),
        ("profile", 30),
        ("message", 70),
        ("salary", 15),
        ("credential", 5),
        ("payment", 10),
        ("job_application", 20),
    ])
});

/// A PII span: character offsets (Unicode scalar values), end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// What it is.
    pub kind: PiiType,
}

/// One content item.
#[derive(Clone, Debug)]
pub struct Content {
    /// Id.
    pub id: i64,
    /// Author (may be absent from the members table).
    pub member_id: i64,
    /// Kind.
    pub kind: &'static str,
    /// Creation time.
    pub created_at: Timestamp,
    /// Text.
    pub text: String,
    /// Members named in the text.
    pub mentions: Vec<i64>,
    /// Ground-truth PII spans in `text`.
    pub spans: Vec<Span>,
}

/// Builds text while counting characters, so spans are character offsets.
struct TextBuilder {
    text: String,
    chars: usize,
    spans: Vec<Span>,
}

impl TextBuilder {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
    }

    fn pii(&mut self, s: &str, kind: PiiType) {
        let start = self.chars;
        self.push(s);
        self.spans.push(Span {
            start,
            end: self.chars,
            kind,
        });
    }

    fn sentence_with(&mut self, before: &str, value: &str, kind: PiiType, after: &str) {
        self.sep();
        self.push(before);
        self.pii(value, kind);
        self.push(after);
    }

    fn sep(&mut self) {
        if !self.text.is_empty() {
            self.push(" ");
        }
    }
}

/// Content item `id` of a corpus with `members` members and `seed`.
pub fn generate(seed: u64, id: i64, members: i64) -> Content {
    let mut rng = Rng::for_entity(seed, Stream::Content, id as u64);
    let members = members.max(1);
    let unknown_author = rng.chance(0.003);
    let member_id = if unknown_author {
        members + 1 + rng.below(1000) as i64
    } else {
        // Skewed towards low ids: power users post most.
        1 + ((rng.unit().powf(1.5)) * members as f64) as i64
    }
    .min(if unknown_author { i64::MAX } else { members });
    let author = (!unknown_author).then(|| Member::generate(seed, member_id));
    let kind = *KINDS.pick(&mut rng);
    let lo = author.as_ref().map_or(ts(CONTENT_START).micros(), |a| {
        a.created_at.micros().max(ts(CONTENT_START).micros())
    });
    let created_at = Timestamp::from_micros(rng.range_i64(lo, ts(CONTENT_END).micros()));
    let hint = author
        .as_ref()
        .and_then(|a| cg_model::Jurisdiction::normalize(a.country).ok())
        .map_or("US", |j| match j.country().as_str() {
            "GB" => "GB",
            "DE" => "DE",
            "FR" => "FR",
            "IN" => "IN",
            "BR" => "BR",
            _ => "US",
        });
    let (first, last) = members::name_parts(seed, member_id);
    let mut b = TextBuilder {
        text: String::with_capacity(256),
        chars: 0,
        spans: Vec::new(),
    };
    let mut mentions = Vec::new();

    match kind {
        "message" => {
            let line: &&str = rng.pick(MESSAGE_LINES);
            b.push(line);
            if rng.chance(0.6) {
                let e = pii::email(&mut rng, first, last);
                b.sentence_with("My personal email is ", &e, PiiType::Email, ".");
            }
            if rng.chance(0.5) {
                let p = pii::phone(&mut rng, hint);
                b.sentence_with("Call me on ", &p, PiiType::Phone, " tonight.");
            }
        }
        "salary" => {
            b.push(&format!(
                "My current base salary is {} {} plus a {}% bonus.",
                rng.pick(&["£", "$", "€"]),
                40_000 + rng.below(160) * 1000,
                rng.below(30)
            ));
        }
        "credential" => {
            let token: String = (0..16)
                .map(|_| char::from(b'a' + rng.below(26) as u8))
                .collect();
            b.push(&format!("Temporary VPN password: {token}"));
        }
        "payment" => {
            let c = pii::credit_card(&mut rng);
            b.sentence_with(
                "Please charge the card ",
                &c,
                PiiType::CreditCard,
                " for the renewal.",
            );
            if rng.chance(0.5) {
                let i = pii::iban(&mut rng);
                b.sentence_with("Refunds go to ", &i, PiiType::IbanCode, ".");
            }
        }
        "job_application" => {
            b.push("Applying for the Senior Engineer role, CV attached.");
            let p = pii::phone(&mut rng, hint);
            b.sentence_with("You can reach me on ", &p, PiiType::Phone, ".");
            if rng.chance(0.3) {
                let s = pii::us_ssn(&mut rng);
                b.sentence_with("SSN for the background check: ", &s, PiiType::UsSsn, ".");
            }
        }
        _ => {
            let topic = rng.pick(TOPICS);
            b.push(&rng.pick(OPENERS).replace("{t}", topic));
            for _ in 0..rng.below(3) {
                b.sep();
                let filler: &&str = rng.pick(FILLERS);
                b.push(filler);
            }
            if rng.chance(0.35) {
                for _ in 0..=rng.below(2) {
                    insert_pii(&mut rng, &mut b, first, last, hint, seed, member_id);
                }
            }
            if rng.chance(0.12) && members > 1 {
                for _ in 0..=rng.below(2) {
                    let other = 1 + rng.below(members as u64) as i64;
                    if other == member_id || mentions.contains(&other) {
                        continue;
                    }
                    let (display, handle) = members::names(seed, other);
                    if rng.chance(0.5) {
                        b.sep();
                        b.push("Thanks ");
                        b.pii(&format!("@{handle}"), PiiType::Mention);
                        b.push(" for the help!");
                    } else {
                        b.sentence_with(
                            "Great working with ",
                            &display,
                            PiiType::Person,
                            " on this.",
                        );
                    }
                    mentions.push(other);
                }
            }
        }
    }
    Content {
        id,
        member_id,
        kind,
        created_at,
        text: b.text,
        mentions,
        spans: b.spans,
    }
}

fn insert_pii(
    rng: &mut Rng,
    b: &mut TextBuilder,
    first: &str,
    last: &str,
    hint: &str,
    seed: u64,
    author: i64,
) {
    match rng.below(10) {
        0 | 1 => {
            let e = pii::email(rng, first, last);
            b.sentence_with("Reach me at ", &e, PiiType::Email, ".");
        }
        2 | 3 => {
            let p = pii::phone(rng, hint);
            b.sentence_with("Call me on ", &p, PiiType::Phone, ".");
        }
        4 => {
            let u = pii::url(rng);
            b.sentence_with("Details at ", &u, PiiType::Url, " if you are curious.");
        }
        5 => {
            let (_, handle) = members::names(seed, author);
            let u = pii::profile_url(&handle);
            b.sentence_with("Connect with me: ", &u, PiiType::Url, "");
        }
        6 => {
            let ip = pii::ip_address(rng);
            b.sentence_with(
                "The server at ",
                &ip,
                PiiType::IpAddress,
                " keeps timing out.",
            );
        }
        7 => {
            let n = pii::uk_nino(rng);
            b.sentence_with(
                "My NI number is ",
                &n,
                PiiType::UkNino,
                ", for the payroll form.",
            );
        }
        8 => {
            let c = pii::credit_card(rng);
            b.sentence_with(
                "Oops, the card ",
                &c,
                PiiType::CreditCard,
                " was charged twice.",
            );
        }
        _ => {
            let i = pii::iban(rng);
            b.sentence_with("Invoices are paid to ", &i, PiiType::IbanCode, ".");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_character_offsets_of_the_values() {
        let mut seen_non_ascii = false;
        for id in 1..5_000 {
            let c = generate(3, id, 1_000);
            let chars: Vec<char> = c.text.chars().collect();
            seen_non_ascii |= c.text.len() != chars.len() && !c.spans.is_empty();
            for s in &c.spans {
                assert!(s.start < s.end && s.end <= chars.len(), "{c:?}");
                let value: String = chars[s.start..s.end].iter().collect();
                assert!(
                    !value.starts_with(' ') && !value.ends_with(' '),
                    "{value:?}"
                );
            }
        }
        assert!(
            seen_non_ascii,
            "no text with non-ASCII characters before a span"
        );
    }

    #[test]
    fn content_is_created_after_sign_up_and_mentions_are_others() {
        for id in 1..3_000 {
            let c = generate(5, id, 500);
            if c.member_id <= 500 {
                let author = Member::generate(5, c.member_id);
                assert!(c.created_at >= author.created_at);
                assert!(!c.mentions.contains(&c.member_id));
            }
        }
    }
}
