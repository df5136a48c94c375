//! The candidate scanner: one left-to-right pass over the bytes, no regex and no allocation
//! per candidate. A byte that cannot start anything (most of them) costs one table lookup.
//!
//! What starts a candidate, and what it becomes:
//!
//! - a digit, `+` or `(` at a token boundary: a *number group* (digit runs joined by single
//!   separators ` - . /`, parentheses, an extension `x123`), classified in priority order as an
//!   IPv4 address, a US SSN, a date (skipped), a payment card (Luhn, issuer ranges, 12–19
//!   digits), or a phone number (7–15 digits written with phone punctuation, or after a phone
//!   cue in any common European language) unless it reads as money, a percentage, a version,
//!   a decimal, thousands or an order/reference number;
//! - `@`: an e-mail address (local part scanned back, domain forward), else an `@handle`;
//! - `http://`, `https://`, `www.` at a word start: a URL;
//! - `:` between hex digits: an IPv6 address;
//! - an upper-case letter at a word start: an IBAN (checksum) or a UK NI number;
//! - a capitalised word at a word start, with name lists: a person's name
//!   ([`Names::find_at`]);
//! - `[at]`, `(at)`, `{at}` or the word `at` between an address-like local part and a domain
//!   written with `[dot]`, `(dot)`, ` dot ` or `.`: an obfuscated e-mail address.

use rustc_hash::FxHashMap;

use crate::engine::Span;
use crate::entity::EntityType;
use crate::names::Names;
use crate::validate;

/// Byte classes.
const PLAIN: u8 = 0;
const DIGIT: u8 = 1;
const UPPER: u8 = 2;
const TRIGGER: u8 = 3;
/// A UTF-8 lead byte of Latin, Greek or Cyrillic letters (a capitalised name may start here).
const LEAD: u8 = 4;
/// `a`, `h`, `w`: a candidate only at a word start (`at`, `http`, `www`).
const LOWER_TRIGGER: u8 = 5;

static CLASS: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = DIGIT;
        b += 1;
    }
    let mut b = b'A';
    while b <= b'Z' {
        t[b as usize] = UPPER;
        b += 1;
    }
    t[b'@' as usize] = TRIGGER;
    t[b'+' as usize] = TRIGGER;
    t[b'(' as usize] = TRIGGER;
    t[b'[' as usize] = TRIGGER;
    t[b'{' as usize] = TRIGGER;
    t[b':' as usize] = TRIGGER;
    t[b'h' as usize] = LOWER_TRIGGER;
    t[b'w' as usize] = LOWER_TRIGGER;
    t[b'a' as usize] = LOWER_TRIGGER;
    let mut b = 0xC3;
    while b <= 0xD4 {
        t[b as usize] = LEAD;
        b += 1;
    }
    t
};

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Finds every structured entity in `text` (and, with `names`, person names), appending spans
/// (unsorted, may overlap: the caller resolves overlaps).
pub(crate) fn scan(text: &str, names: Option<&Names>, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let class = CLASS[bytes[i] as usize];
        if class == PLAIN {
            i += 1;
            continue;
        }
        let boundary = i == 0 || !is_word(bytes[i - 1]);
        if !boundary && class != TRIGGER {
            // Inside a word: only `@`, `(`, `:` ... can start something there.
            i += 1;
            continue;
        }
        let next = match class {
            DIGIT if boundary => number(text, i, out),
            UPPER if boundary => upper(text, i, out).or_else(|| name(text, i, names, out)),
            LEAD if boundary => name(text, i, names, out),
            TRIGGER | LOWER_TRIGGER => trigger(text, i, boundary, out),
            _ => None,
        };
        i = match next {
            Some(end) if end > i => end,
            // Skip the rest of an alphanumeric token (a rejected number is not retried from its
            // middle).
            _ => {
                let mut j = i + 1;
                while j < n && is_alnum(bytes[j]) && (class == DIGIT || class == UPPER) {
                    j += 1;
                }
                j
            }
        };
    }
}

/// Candidates at `@`, `+`, `(`, `[`, `{`, `:`, `h`, `w`, `a`. Returns where scanning resumes.
fn trigger(text: &str, i: usize, boundary: bool, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    match bytes[i] {
        b'@' => at_sign(text, i, out),
        b'+' | b'(' if boundary || bytes[i] == b'(' => {
            let next = *bytes.get(i + 1)?;
            let starts_number = next.is_ascii_digit()
                || (bytes[i] == b'+' && next == b'(')
                || (bytes[i] == b'(' && next == b'+');
            if !starts_number {
                return obfuscated_at(text, i, out);
            }
            // `(` inside a word (`f(1)`) is not a number's start.
            if i > 0 && is_word(bytes[i - 1]) {
                return None;
            }
            number(text, i, out)
        }
        b'[' | b'{' => obfuscated_at(text, i, out),
        b':' => ipv6(text, i, out),
        b'h' | b'w' if boundary => url(text, i, out),
        b'a' if i > 0 && bytes[i - 1] == b' ' => obfuscated_at(text, i, out),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

/// The shape of a number group.
#[derive(Debug, Default)]
struct Group {
    /// Digit-run lengths, in order (at most 16 kept).
    runs: [u8; 16],
    count: usize,
    /// Digits (extension excluded).
    digits: usize,
    /// Separator kinds seen between runs.
    space: bool,
    dash: bool,
    dot: bool,
    slash: bool,
    paren: bool,
    plus: bool,
    /// Digits of an extension (`x123`, `ext. 12`).
    extension: usize,
    /// End of the group (exclusive), before any extension.
    end: usize,
    /// End including the extension.
    end_ext: usize,
    /// The byte offset where each run starts.
    starts: [usize; 16],
}

impl Group {
    fn only(&self, space: bool, dash: bool, dot: bool, slash: bool) -> bool {
        (!self.space || space)
            && (!self.dash || dash)
            && (!self.dot || dot)
            && (!self.slash || slash)
    }

    fn separated(&self) -> bool {
        self.space || self.dash || self.dot || self.slash
    }

    fn run(&self, k: usize) -> usize {
        usize::from(self.runs[k])
    }
}

/// Parses a number group starting at `s` (a digit, `+` or `(`).
fn parse_group(bytes: &[u8], s: usize) -> Group {
    let n = bytes.len();
    let at = |k: usize| bytes.get(k).copied().unwrap_or(0);
    let joins = |k: usize| at(k).is_ascii_digit() || (at(k) == b'(' && at(k + 1).is_ascii_digit());
    let mut g = Group::default();
    let mut j = s;
    if at(j) == b'+' {
        g.plus = true;
        j += 1;
    }
    g.end = s;
    loop {
        let open = at(j) == b'(';
        let run_start = if open { j + 1 } else { j };
        let mut k = run_start;
        while k < n && bytes[k].is_ascii_digit() {
            k += 1;
        }
        if k == run_start {
            break;
        }
        if open {
            if at(k) != b')' {
                // An unclosed `(`: the group ends before it (or is nothing at all).
                break;
            }
            g.paren = true;
        }
        if g.count < g.runs.len() {
            g.runs[g.count] = (k - run_start).min(255) as u8;
            g.starts[g.count] = run_start;
            g.count += 1;
        }
        g.digits += k - run_start;
        j = if open { k + 1 } else { k };
        g.end = j;
        // A separator joins the next run only when a digit (or `(digit`) follows it at once.
        match at(j) {
            b' ' if joins(j + 1) => {
                g.space = true;
                j += 1;
            }
            b'-' | b'.' | b'/' if joins(j + 1) => {
                match at(j) {
                    b'-' => g.dash = true,
                    b'.' => g.dot = true,
                    _ => g.slash = true,
                }
                j += 1;
            }
            b'-' if at(j + 1) == b' ' && joins(j + 2) => {
                g.dash = true;
                j += 2;
            }
            _ if open && joins(j) => {}
            _ => break,
        }
    }
    g.end_ext = g.end;
    // An extension: `x123`, ` x 123`, `ext. 123`, `ext123`.
    let rest = &bytes[g.end..];
    let mut k = 0;
    while k < rest.len() && rest[k] == b' ' {
        k += 1;
    }
    let word_len = if rest[k..].first().is_some_and(|b| *b == b'x' || *b == b'X') {
        1
    } else if rest[k..].len() >= 3 && rest[k..k + 3].eq_ignore_ascii_case(b"ext") {
        if rest.get(k + 3) == Some(&b'.') { 4 } else { 3 }
    } else {
        0
    };
    if word_len > 0 && (k <= 1) {
        let mut m = k + word_len;
        while m < rest.len() && rest[m] == b' ' {
            m += 1;
        }
        let d0 = m;
        while m < rest.len() && rest[m].is_ascii_digit() {
            m += 1;
        }
        if (1..=6).contains(&(m - d0)) && rest.get(m).is_none_or(|b| !is_word(*b)) {
            g.extension = m - d0;
            g.end_ext = g.end + m;
        }
    }
    g
}

/// A number candidate starting at `s` (first byte of the group). Returns where scanning
/// resumes.
fn number(text: &str, s: usize, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    // Numbers start at a token boundary: never inside `2025-03-01`, `3.14159`, a word, or
    // right after a currency sign or `#`.
    if let Some(prev) = text[..s].chars().next_back()
        && (prev.is_alphanumeric() || "._-/#$€£¥₹%".contains(prev))
    {
        return None;
    }
    let g = parse_group(bytes, s);
    if g.digits == 0 {
        return None;
    }
    // A number ends at a boundary too (not `123abc`, not the local part of `123@x.io`).
    let ends_clean = |end: usize| bytes.get(end).is_none_or(|b| !(is_word(*b) || *b == b'@'));
    let cand = &text[s..g.end];
    // IPv4.
    if g.count == 4 && g.only(false, false, true, false) && !g.plus && !g.paren {
        if validate::ipv4(cand) && ends_clean(g.end) {
            push(out, s, g.end, EntityType::IpAddress);
        }
        return Some(g.end);
    }
    // US SSN (an SSN-shaped number that is not a valid SSN is nothing).
    if validate::ssn_shaped(cand) {
        if validate::us_ssn(cand) && ends_clean(g.end) {
            push(out, s, g.end, EntityType::UsSsn);
        }
        return Some(g.end);
    }
    if looks_like_date(&g) {
        return Some(g.end);
    }
    // Payment cards: 12–19 digits, compact or grouped by spaces or dashes.
    if (12..=19).contains(&g.digits)
        && !g.plus
        && !g.paren
        && g.only(true, true, false, false)
        && g.extension == 0
        && validate::credit_card(cand)
        && ends_clean(g.end)
    {
        push(out, s, g.end, EntityType::CreditCard);
        return Some(g.end);
    }
    phone(text, s, &g, out)
}

/// `2025-03-01`, `01.03.2025`, `1/3/2025`, `03-01-25`: three runs, one separator kind, one of
/// them a year (or all short).
fn looks_like_date(g: &Group) -> bool {
    if g.count != 3 || g.plus || g.paren || g.space {
        return false;
    }
    let one_kind = [g.dash, g.dot, g.slash].iter().filter(|x| **x).count() == 1;
    let (a, b, c) = (g.run(0), g.run(1), g.run(2));
    one_kind && ((a == 4 && b <= 2 && c <= 2) || (a <= 2 && b <= 2 && (c == 4 || c == 2)))
}

/// Word stems after which a number is a phone number whatever its shape (lower case, ASCII
/// folded; a word of the last three before the number matches when it starts with a stem of
/// four letters or more, or equals a shorter one).
const PHONE_CUES: &[&str] = &[
    "call",
    "phone",
    "tel",
    "telef",
    "telep",
    "mobile",
    "cell",
    "fax",
    "contact",
    "reach",
    "whatsapp",
    "sms",
    "ring",
    "dial",
    "hotline",
    "handy",
    "mobil",
    "rufnummer",
    "anruf",
    "ruf",
    "portable",
    "appel",
    "joindre",
    "numero",
    "movil",
    "llam",
    "chiam",
    "bel",
    "bellen",
    "celular",
    "ligue",
    "liga",
    "zadzwo",
    "komork",
    "numer",
    "puhelin",
    "soita",
    "tlf",
    "tfno",
    "gsm",
    "cel",
    "mob",
    "text",
];

/// Word stems after which a number is a reference, not a phone (unless a phone cue is nearer).
const REFERENCE_CUES: &[&str] = &[
    "order",
    "track",
    "invoice",
    "ref",
    "refer",
    "ticket",
    "case",
    "id",
    "account",
    "acct",
    "po",
    "sku",
    "serial",
    "isbn",
    "zip",
    "postcode",
    "postal",
    "code",
    "bug",
    "issue",
    "version",
    "build",
    "room",
    "flight",
    "booking",
    "confirm",
    "receipt",
    "transaction",
    "txn",
    "policy",
    "claim",
    "item",
    "part",
    "model",
    "batch",
    "lot",
    "parcel",
    "shipment",
    "pnr",
    "record",
    "file",
    "patent",
    "page",
    "chapter",
    "section",
    "line",
    "row",
    "step",
    "release",
    "commit",
    "pr",
    "no",
    "nr",
    "bestell",
    "rechnung",
    "commande",
    "facture",
    "pedido",
    "factura",
    "ordine",
    "fattura",
    "factuur",
    "zamowien",
    "faktura",
    "kunden",
    "auftrag",
    "dossier",
    "expediente",
    "pratica",
    "price",
    "cost",
    "total",
    "paid",
    "pay",
    "budget",
    "revenue",
    "salary",
    "population",
    "year",
    "km",
    "mile",
    "kg",
    "unit",
    "sold",
];

/// Currency signs and words around money (lower case).
const CURRENCY: &[&str] = &[
    "$", "€", "£", "¥", "₹", "usd", "eur", "gbp", "chf", "jpy", "inr", "brl", "cad", "aud",
    "dollar", "euro", "pound", "rupee", "reais", "franc", "yen", "kr", "sek", "nok", "dkk", "pln",
    "zł",
];

/// Every cue stem: `(is a phone cue, is a reference cue)`.
/// Cue stems with whether each is a phone cue and a reference cue, and the longest stem's length.
type CueTable = (FxHashMap<&'static [u8], (bool, bool)>, usize);

/// The cue table, built once.
fn cue_table() -> &'static CueTable {
    static TABLE: std::sync::LazyLock<CueTable> = std::sync::LazyLock::new(|| {
        let mut t: FxHashMap<&'static [u8], (bool, bool)> = FxHashMap::default();
        for c in PHONE_CUES {
            t.entry(c.as_bytes()).or_default().0 = true;
        }
        for c in REFERENCE_CUES {
            t.entry(c.as_bytes()).or_default().1 = true;
        }
        let longest = t.keys().map(|k| k.len()).max().unwrap_or(0);
        (t, longest)
    });
    &TABLE
}

/// Which cue list the nearest of the last three words before `s` matches: `Some(true)` a phone
/// cue, `Some(false)` a reference cue, `None` neither.
fn nearest_cue(bytes: &[u8], s: usize) -> Option<bool> {
    let mut j = s;
    let floor = s.saturating_sub(48);
    for _ in 0..3 {
        // Skip what separates words (spaces, `:`, `#`, `.`, `(`...).
        while j > floor && !(bytes[j - 1].is_ascii_alphabetic() || bytes[j - 1] >= 0x80) {
            j -= 1;
        }
        let end = j;
        while j > floor && (bytes[j - 1].is_ascii_alphabetic() || bytes[j - 1] >= 0x80) {
            j -= 1;
        }
        if j == end {
            return None;
        }
        let mut buf = [0u8; 16];
        let n = crate::names::fold(&bytes[j..end], &mut buf);
        let word = &buf[..n];
        if word.is_empty() {
            return None;
        }
        let (cues, longest) = cue_table();
        // A stem matches as a prefix of four letters or more, or as the whole word: one lookup
        // per such prefix, both lists at once.
        let (mut phone, mut reference) = (false, false);
        for len in (1..=word.len().min(*longest)).filter(|&len| len >= 4 || len == word.len()) {
            if let Some((p, r)) = cues.get(&word[..len]) {
                phone |= *p;
                reference |= *r;
            }
        }
        if phone {
            return Some(true);
        }
        if reference {
            return Some(false);
        }
    }
    None
}

/// Whether a currency sign or word stands right before `s` or right after `end`.
fn money_around(text: &str, s: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    let mut a = end;
    while a < bytes.len() && bytes[a] == b' ' {
        a += 1;
    }
    let mut b = s;
    while b > 0 && bytes[b - 1] == b' ' {
        b -= 1;
    }
    CURRENCY.iter().any(|c| {
        let c = c.as_bytes();
        let after = bytes.len() - a >= c.len() && bytes[a..a + c.len()].eq_ignore_ascii_case(c);
        let before = b >= c.len()
            && bytes[b - c.len()..b].eq_ignore_ascii_case(c)
            && (b == c.len()
                || !c[0].is_ascii_alphabetic()
                || !bytes[b - c.len() - 1].is_ascii_alphanumeric());
        after || before
    })
}

/// The phone decision for a number group that is no address, SSN, date or card.
fn phone(text: &str, s: usize, g: &Group, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut g_end = g.end;
    let mut digits = g.digits;
    let mut count = g.count.min(g.runs.len());
    // Trailing lone digits after a space are not part of a number (`call +44 20 7946 0958 2
    // times`), and at most 15 digits are: drop trailing space-separated runs.
    while count > 1
        && (g.run(count - 1) == 1 || digits > 15)
        && bytes[g.starts[count - 1] - 1] == b' '
    {
        digits -= g.run(count - 1);
        count -= 1;
        g_end = g.starts[count] - 1;
        while g_end > s && !bytes[g_end - 1].is_ascii_digit() && bytes[g_end - 1] != b')' {
            g_end -= 1;
        }
    }
    let end = if count == g.count.min(g.runs.len()) {
        g.end_ext
    } else {
        g_end
    };
    let next = bytes.get(end).copied();
    if next.is_some_and(|b| is_word(b) || b == b'@' || b == b'%') {
        return Some(g.end);
    }
    let cue = nearest_cue(bytes, s);
    let cued = cue == Some(true);
    // A `+` country code reads as a phone number whatever word comes before.
    let referenced = !g.plus && cue == Some(false);
    if referenced || (!g.plus && money_around(text, s, end)) {
        return Some(g.end);
    }
    let min = if cued { 6 } else { 7 };
    if !(min..=15).contains(&digits) {
        return Some(g.end);
    }
    let separated = g.separated() || g.plus || g.paren;
    // A decimal (`3.14159`), a version (`1.2.3.4567`, `10.0.19041`) or thousands
    // (`1 234 567`) is not a phone.
    let runs = &g.runs[..count];
    let dotted_only = g.dot && !g.space && !g.dash && !g.slash && !g.plus && !g.paren;
    if dotted_only && (count == 2 || runs[0] == 1 || runs.contains(&1)) {
        return Some(g.end);
    }
    let thousands = !g.plus
        && !g.paren
        && g.only(true, false, true, false)
        && count >= 2
        && runs[0] <= 2
        && runs[1..].iter().all(|r| *r == 3);
    if thousands && !cued && runs[0] == 1 {
        return Some(g.end);
    }
    let plausible = if separated {
        // Each run 1–6 digits (national layouts like `99 999999`), a `+` country code 1–3.
        (!g.plus || (1..=4).contains(&runs[0]) || runs.len() == 1)
            && runs
                .iter()
                .enumerate()
                .all(|(k, r)| (1..=if g.plus && k > 0 { 12 } else { 8 }).contains(r))
    } else {
        // A compact number: after a cue, or a national number with its trunk `0`.
        cued || (bytes[s] == b'0' && (10..=11).contains(&digits))
    };
    if plausible {
        push(out, s, end, EntityType::Phone);
        return Some(end);
    }
    Some(g.end)
}

// ---------------------------------------------------------------------------------------------
// E-mail, mentions, URLs

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b) || b >= 0x80
}

fn is_label(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// The end of a domain `label(.label)*.tld` starting at `d`, or `None`.
fn domain_end(bytes: &[u8], d: usize) -> Option<usize> {
    let n = bytes.len();
    let mut j = d;
    let mut labels = 0;
    let mut last_start = d;
    loop {
        let start = j;
        while j < n && is_label(bytes[j]) {
            j += 1;
        }
        if j == start || bytes[start] == b'-' || bytes[j - 1] == b'-' {
            // An empty or dashed label ends the domain at the previous dot.
            if labels == 0 {
                return None;
            }
            j = start - 1;
            break;
        }
        labels += 1;
        last_start = start;
        if j + 1 < n && bytes[j] == b'.' && is_label(bytes[j + 1]) {
            j += 1;
            continue;
        }
        break;
    }
    let tld = &bytes[last_start..j];
    (labels >= 2 && (2..=24).contains(&tld.len()) && tld.iter().all(u8::is_ascii_alphabetic))
        .then_some(j)
}

fn at_sign(text: &str, i: usize, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut s = i;
    while s > 0 && is_local(bytes[s - 1]) {
        s -= 1;
    }
    // Non-ASCII bytes scanned back must start on a char boundary.
    while s < i && !text.is_char_boundary(s) {
        s += 1;
    }
    if s < i
        && let Some(end) = domain_end(bytes, i + 1)
    {
        push(out, s, end, EntityType::Email);
        return Some(end);
    }
    // A mention: `@handle` not inside a word or an address.
    let prev_ok =
        i == 0 || !(is_word(bytes[i - 1]) || bytes[i - 1] == b'.' || bytes[i - 1] == b'@');
    let first = *bytes.get(i + 1)?;
    if prev_ok && (first.is_ascii_alphanumeric() || first == b'_') {
        let mut j = i + 1;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || b"_.-".contains(&bytes[j])) {
            j += 1;
        }
        while bytes[j - 1] == b'.' || bytes[j - 1] == b'-' {
            j -= 1;
        }
        push(out, i, j, EntityType::Mention);
        return Some(j);
    }
    None
}

fn url(text: &str, i: usize, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    let rest = &bytes[i..];
    let prefix = if rest.len() >= 8 && rest[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if rest.starts_with(b"www.") {
        4
    } else {
        return None;
    };
    let mut j = i + prefix;
    while j < bytes.len() {
        let b = bytes[j];
        if b.is_ascii_whitespace() || b"<>\"'()[]{}".contains(&b) {
            break;
        }
        j += 1;
    }
    while j > i + prefix && b".,;:!?'\"".contains(&bytes[j - 1]) {
        j -= 1;
    }
    while !text.is_char_boundary(j) {
        j += 1;
    }
    if j - i > 7 {
        push(out, i, j, EntityType::Url);
        return Some(j);
    }
    None
}

/// An obfuscated address around position `i` (`[at]`, `(at)`, `{at}`, or ` at `).
fn obfuscated_at(text: &str, i: usize, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    let rest = &bytes[i..];
    let (at_len, plain) = if rest.len() >= 4
        && rest[1..3].eq_ignore_ascii_case(b"at")
        && matches!(
            (rest[0], rest[3]),
            (b'[', b']') | (b'(', b')') | (b'{', b'}')
        ) {
        (4, false)
    } else if rest.len() >= 3 && rest[..2].eq_ignore_ascii_case(b"at") && rest[2] == b' ' {
        (3, true)
    } else {
        return None;
    };
    // The local part: the word before, across at most one space.
    let mut e = i;
    while e > 0 && bytes[e - 1] == b' ' {
        e -= 1;
    }
    if plain && e == i {
        return None;
    }
    let mut s = e;
    while s > 0 && (bytes[s - 1].is_ascii_alphanumeric() || b"._%+-".contains(&bytes[s - 1])) {
        s -= 1;
    }
    if s == e || i - e > 1 || (s > 0 && is_word(bytes[s - 1])) {
        return None;
    }
    // The domain: labels joined by `.`, `[dot]`, `(dot)`, `{dot}` or ` dot `.
    let mut j = i + at_len;
    while j < bytes.len() && bytes[j] == b' ' {
        j += 1;
    }
    let mut labels = 0;
    let mut obfuscated_dot = false;
    let mut last = (j, j);
    loop {
        let start = j;
        while j < bytes.len() && is_label(bytes[j]) {
            j += 1;
        }
        if j == start {
            break;
        }
        labels += 1;
        last = (start, j);
        let r = &bytes[j..];
        let dot = if r.first() == Some(&b'.') && r.get(1).is_some_and(|b| is_label(*b)) {
            1
        } else if r.len() >= 5
            && r[1..4].eq_ignore_ascii_case(b"dot")
            && matches!((r[0], r[4]), (b'[', b']') | (b'(', b')') | (b'{', b'}'))
        {
            obfuscated_dot = true;
            5
        } else if r.len() >= 6
            && r[0] == b' '
            && r[1] != b' '
            && (r[1..5].eq_ignore_ascii_case(b"dot ") || r[1..5].eq_ignore_ascii_case(b"[dot"))
        {
            if r[1] == b'[' {
                if r.len() < 7 || r[5] != b']' {
                    0
                } else {
                    obfuscated_dot = true;
                    6
                }
            } else {
                obfuscated_dot = true;
                5
            }
        } else if r.len() >= 7 && r[0] == b' ' && r[1..6].eq_ignore_ascii_case(b"(dot)") {
            obfuscated_dot = true;
            6
        } else {
            0
        };
        if dot == 0 {
            break;
        }
        j += dot;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
    }
    let (ts, te) = last;
    let tld = &bytes[ts..te];
    let tld_ok = (2..=24).contains(&tld.len()) && tld.iter().all(u8::is_ascii_alphabetic);
    // The plain-word form (`jane at example dot com`) needs an obfuscated dot and a common
    // top-level domain: "meet at home dot" is not an address.
    let plain_ok = !plain || (obfuscated_dot && common_tld(tld));
    if labels >= 2 && tld_ok && plain_ok && bytes.get(te).is_none_or(|b| !is_word(*b)) {
        push(out, s, te, EntityType::Email);
        return Some(te);
    }
    None
}

fn common_tld(tld: &[u8]) -> bool {
    const TLDS: &[&[u8]] = &[
        b"com", b"org", b"net", b"edu", b"gov", b"io", b"co", b"uk", b"de", b"fr", b"es", b"it",
        b"nl", b"be", b"ch", b"at", b"pl", b"se", b"no", b"dk", b"fi", b"ie", b"pt", b"br", b"in",
        b"jp", b"cn", b"ru", b"us", b"ca", b"au", b"info", b"biz", b"me", b"eu", b"mx", b"ar",
        b"cz", b"gr", b"hu", b"ro", b"tr",
    ];
    TLDS.iter().any(|t| tld.eq_ignore_ascii_case(t))
}

// ---------------------------------------------------------------------------------------------
// IPv6, IBAN, NINO

fn ipv6(text: &str, i: usize, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    let hexish = |b: u8| b.is_ascii_hexdigit() || b == b':';
    let mut s = i;
    while s > 0 && hexish(bytes[s - 1]) {
        s -= 1;
    }
    let mut e = i;
    while e < bytes.len() && hexish(bytes[e]) {
        e += 1;
    }
    if s > 0 && (bytes[s - 1].is_ascii_alphanumeric() || bytes[s - 1] == b'.') {
        return Some(e);
    }
    let cand = &text[s..e];
    // A trailing `:` is punctuation unless the address ends in `::`.
    let t = if cand.ends_with("::") {
        cand
    } else {
        cand.trim_end_matches(':')
    };
    if validate::ipv6(t) && bytes.get(s + t.len()).is_none_or(|b| !is_word(*b)) {
        push(out, s, s + t.len(), EntityType::IpAddress);
    }
    Some(e)
}

/// Candidates at an upper-case letter at a word start: an IBAN or a UK NI number.
fn upper(text: &str, i: usize, out: &mut Vec<Span>) -> Option<usize> {
    let bytes = text.as_bytes();
    let at = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
    if !at(1).is_ascii_uppercase() {
        return None;
    }
    if at(2).is_ascii_digit() && at(3).is_ascii_digit() {
        if let Some(end) = iban(text, i) {
            push(out, i, end, EntityType::IbanCode);
            return Some(end);
        }
        if let Some(end) = nino(bytes, i) {
            push(out, i, end, EntityType::UkNino);
            return Some(end);
        }
    } else if at(2) == b' '
        && at(3).is_ascii_digit()
        && let Some(end) = nino(bytes, i)
    {
        push(out, i, end, EntityType::UkNino);
        return Some(end);
    }
    None
}

/// An IBAN at `i`: `CCkk` then groups of letters and digits, compact or in groups of four.
fn iban(text: &str, i: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut ends = [0usize; 12];
    let mut count = 0;
    let mut j = i;
    let mut chars = 0;
    loop {
        let start = j;
        while j < bytes.len() && (bytes[j].is_ascii_uppercase() || bytes[j].is_ascii_digit()) {
            j += 1;
        }
        chars += j - start;
        if j == start || chars > 34 {
            break;
        }
        if count < ends.len() {
            ends[count] = j;
            count += 1;
        }
        if j + 1 < bytes.len()
            && bytes[j] == b' '
            && (bytes[j + 1].is_ascii_uppercase() || bytes[j + 1].is_ascii_digit())
        {
            j += 1;
        } else {
            break;
        }
    }
    // The longest valid prefix of whole groups (a greedy scan may take a following word).
    (1..=count).rev().map(|k| ends[k - 1]).find(|end| {
        bytes.get(*end).is_none_or(|b| !is_word(*b))
            && (15..=42).contains(&(end - i))
            && validate::iban(&text[i..*end])
    })
}

/// A UK NI number at `i`: `AB 12 34 56 C` or `AB123456C`.
fn nino(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 2;
    let mut compact = [0u8; 9];
    compact[..2].copy_from_slice(&bytes[i..i + 2]);
    for k in 0..3 {
        if bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        let pair = bytes.get(j..j + 2)?;
        if !pair.iter().all(u8::is_ascii_digit) {
            return None;
        }
        compact[2 + 2 * k..4 + 2 * k].copy_from_slice(pair);
        j += 2;
    }
    if bytes.get(j) == Some(&b' ') {
        j += 1;
    }
    compact[8] = *bytes.get(j)?;
    j += 1;
    let text = std::str::from_utf8(&compact).ok()?;
    (bytes.get(j).is_none_or(|b| !is_word(*b)) && validate::uk_nino(text)).then_some(j)
}

/// A person's name starting at `i` (see [`Names::find_at`]).
fn name(text: &str, i: usize, names: Option<&Names>, out: &mut Vec<Span>) -> Option<usize> {
    let (s, e) = names?.find_at(text, i)?;
    push(out, s, e, EntityType::Person);
    Some(e)
}

fn push(out: &mut Vec<Span>, start: usize, end: usize, kind: EntityType) {
    out.push(Span { start, end, kind });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, &'static str)> {
        let mut spans = Vec::new();
        scan(text, None, &mut spans);
        spans.sort_by_key(|s| s.start);
        spans
            .iter()
            .map(|s| {
                let kind = match s.kind {
                    EntityType::Phone => "PHONE",
                    EntityType::Email => "EMAIL",
                    EntityType::CreditCard => "CREDIT_CARD",
                    EntityType::IpAddress => "IP_ADDRESS",
                    EntityType::UsSsn => "US_SSN",
                    EntityType::UkNino => "UK_NINO",
                    EntityType::IbanCode => "IBAN_CODE",
                    EntityType::Url => "URL",
                    EntityType::Mention => "MENTION",
                    _ => "OTHER",
                };
                (text[s.start..s.end].to_owned(), kind)
            })
            .collect()
    }

    fn one(text: &str) -> (String, &'static str) {
        let f = found(text);
        assert_eq!(f.len(), 1, "{text}: {f:?}");
        f[0].clone()
    }

    #[test]
    fn phone_shapes_without_a_numbering_plan() {
        for (text, phone) in [
            ("reach me on 555 0199 today", "555 0199"),
            ("tel 55 123456 (office)", "55 123456"),
            ("mobile 612 345 678", "612 345 678"),
            ("ring 2345 6789 tonight", "2345 6789"),
            ("Call (11) 912-345 now", "(11) 912-345"),
            ("Tél : 06-12-34-56-78", "06-12-34-56-78"),
            ("call 45 67 89", "45 67 89"),
            ("number 41 234 56 78", "41 234 56 78"),
            ("dial +41 44 668 18 00 please", "+41 44 668 18 00"),
            ("Phone: 555-123-4567x1234.", "555-123-4567x1234"),
            ("Phone: (555)123-4567x123", "(555)123-4567x123"),
            ("fax 555.123.4567x9876", "555.123.4567x9876"),
            ("office 199-555-0123", "199-555-0123"),
            ("or 199.555.0123", "199.555.0123"),
            ("Handy 0151 23456789", "0151 23456789"),
            ("WhatsApp +91-9876543210", "+91-9876543210"),
            ("call me at 07700900123", "07700900123"),
            ("Telefon: 030/23125678", "030/23125678"),
        ] {
            assert_eq!(one(text), (phone.to_owned(), "PHONE"), "{text}");
        }
    }

    #[test]
    fn numbers_that_are_not_phones() {
        for text in [
            "Revenue grew 12.5% to 1,234,567 dollars in 2025.",
            "The meeting is on 2025-03-01 at 10:30, room 4021.",
            "Pi is 3.14159265 and e is 2.7182818.",
            "Order #48213 shipped on 01.03.2025 via route 66.",
            "Version 10.2.3 fixes bug 123456.",
            "Build 10.0.19041 and 1.2.3.4567 are versions.",
            "Salary band: 85000 to 120000 EUR.",
            "It costs $1 234 567 or 2 345 678 € in total.",
            "Order number 12345678 and tracking 1Z 999 AA1 012 345 678 4",
            "Invoice 2023-0045-991 is due; ref 88 991 223.",
            "Population 1 234 567 people, 99.5 % coverage.",
            "Between 12-25-2024 and 25/12/2024 we sold 12345678 units.",
            "Reference 20230045991 on the ticket.",
            "f(1234567) returns 42",
        ] {
            assert_eq!(found(text), vec![], "{text}");
        }
    }

    #[test]
    fn obfuscated_addresses_are_e_mail() {
        for (text, addr) in [
            (
                "write to jane.doe [at] example [dot] com today",
                "jane.doe [at] example [dot] com",
            ),
            ("jane(at)example(dot)org", "jane(at)example(dot)org"),
            (
                "mail: bob at example dot co dot uk",
                "bob at example dot co dot uk",
            ),
            ("alice{at}mail.example.com", "alice{at}mail.example.com"),
        ] {
            assert_eq!(one(text), (addr.to_owned(), "EMAIL"), "{text}");
        }
        for text in ["meet me at home dot", "look at that", "rate (at) 5 percent"] {
            assert_eq!(found(text), vec![], "{text}");
        }
    }

    #[test]
    fn cards_of_every_issuer_compact_or_grouped() {
        for card in [
            "4111 1111 1111 1111",
            "5555-5555-5555-4444",
            "378282246310005",
            "30569309025904",
            "6200000000000005",
            "3530 1113 3330 0000",
            "501800000009",
        ] {
            assert_eq!(
                one(&format!("pay with {card} now")),
                (card.to_owned(), "CREDIT_CARD")
            );
        }
        assert_eq!(found("Ticket 4111 1111 1111 1112 is a reference"), vec![]);
    }

    #[test]
    fn other_structured_types() {
        assert_eq!(
            one("ip 203.0.113.42."),
            ("203.0.113.42".to_owned(), "IP_ADDRESS")
        );
        assert_eq!(
            one("at 2001:db8::1 now"),
            ("2001:db8::1".to_owned(), "IP_ADDRESS")
        );
        assert_eq!(
            one("link fe80::1ff:fe23:4567:890a"),
            ("fe80::1ff:fe23:4567:890a".to_owned(), "IP_ADDRESS")
        );
        assert_eq!(found("at 12:30:45 it failed"), vec![]);
        assert_eq!(
            one("SSN: 123-45-6789."),
            ("123-45-6789".to_owned(), "US_SSN")
        );
        assert_eq!(found("bad 666-12-3456"), vec![]);
        assert_eq!(
            one("NI AB 12 34 56 C ok"),
            ("AB 12 34 56 C".to_owned(), "UK_NINO")
        );
        assert_eq!(
            one("IBAN GB82 WEST 1234 5698 7654 32 please"),
            ("GB82 WEST 1234 5698 7654 32".to_owned(), "IBAN_CODE")
        );
        assert_eq!(
            one("x DE89370400440532013000."),
            ("DE89370400440532013000".to_owned(), "IBAN_CODE")
        );
        assert_eq!(
            one("see https://example.com/a?b=1."),
            ("https://example.com/a?b=1".to_owned(), "URL")
        );
        assert_eq!(
            one("mail zoë@example.com"),
            ("zoë@example.com".to_owned(), "EMAIL")
        );
        assert_eq!(
            one("thanks @data.team."),
            ("@data.team".to_owned(), "MENTION")
        );
        assert_eq!(found("user@localhost and @ alone"), vec![]);
    }
}
