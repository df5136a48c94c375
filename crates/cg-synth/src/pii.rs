//! Generators of personal data that look real and pass the validators a redaction engine
//! applies: cards pass Luhn, IBANs their mod-97 check, NI numbers and SSNs their format rules,
//! phones the numbering plans of their country.

use crate::rng::Rng;

/// The PII types of the ground truth (the names `consentgate redact --spans` uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiType {
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// A URL (including member profile URLs).
    Url,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A payment card number.
    CreditCard,
    /// An IBAN.
    IbanCode,
    /// A UK National Insurance number.
    UkNino,
    /// A US Social Security number.
    UsSsn,
    /// An @handle.
    Mention,
    /// A person's name.
    Person,
}

impl PiiType {
    /// The stable upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Email => "EMAIL",
            PiiType::Phone => "PHONE",
            PiiType::Url => "URL",
            PiiType::IpAddress => "IP_ADDRESS",
            PiiType::CreditCard => "CREDIT_CARD",
            PiiType::IbanCode => "IBAN_CODE",
            PiiType::UkNino => "UK_NINO",
            PiiType::UsSsn => "US_SSN",
            PiiType::Mention => "MENTION",
            PiiType::Person => "PERSON",
        }
    }
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n).map(|_| rng.digit()).collect()
}

/// Lower-case ASCII letters only (for addresses and handles).
pub fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let mapped = match c {
            'a'..='z' => Some(c),
            'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' | 'ễ' => Some('e'),
            'í' | 'ì' | 'î' | 'ï' | 'ı' => Some('i'),
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'ø' => Some('o'),
            'ú' | 'ù' | 'û' | 'ü' => Some('u'),
            'ç' => Some('c'),
            'ñ' => Some('n'),
            'ł' => Some('l'),
            'ś' => Some('s'),
            'ğ' => Some('g'),
            'ß' => Some('s'),
            _ => None,
        };
        out.extend(mapped);
    }
    out
}

/// An e-mail address for a person.
pub fn email(rng: &mut Rng, first: &str, last: &str) -> String {
    let (f, l) = (ascii_fold(first), ascii_fold(last));
    let domain = rng.pick(crate::vocab::EMAIL_DOMAINS);
    match rng.below(6) {
        0 => format!("{f}.{l}@{domain}"),
        1 => format!("{f}{}@{domain}", rng.below(100)),
        2 => format!("{}{l}@{domain}", f.chars().next().unwrap_or('x')),
        3 => format!("{f}_{l}+jobs@{domain}"),
        // Obfuscated against scrapers, as people write them in posts.
        4 => format!("{f}.{l} [at] {}", domain.replace('.', " [dot] ")),
        _ => format!("{f}(at){}", domain.replace('.', "(dot)")),
    }
}

/// A phone number for `country` (GB, US, DE, FR, IN, BR; others get international US/GB
/// forms), in an international or a national format.
pub fn phone(rng: &mut Rng, country: &str) -> String {
    let national = rng.chance(0.5);
    match country {
        "GB" => {
            if rng.chance(0.5) {
                // Ofcom drama range, London.
                let tail = digits(rng, 3);
                if national {
                    format!("020 7946 0{tail}")
                } else {
                    format!("+44 20 7946 0{tail}")
                }
            } else {
                let tail = digits(rng, 3);
                if national {
                    format!("07700 900{tail}")
                } else {
                    format!("+44 7700 900{tail}")
                }
            }
        }
        "DE" => {
            if rng.chance(0.5) {
                let n = format!("{}{}", 2 + rng.below(8), digits(rng, 7));
                if national {
                    format!("030 {n}")
                } else {
                    format!("+49 30 {n}")
                }
            } else {
                let n = digits(rng, 8);
                let pre = *rng.pick(&["151", "160", "170", "176"]);
                if national {
                    format!("0{pre} {n}")
                } else {
                    format!("+49 {pre} {n}")
                }
            }
        }
        "FR" => {
            // Mobiles 06 (but not 069x) and 073–079 (07[0-2] is unallocated), Paris landlines 01.
            let lead = *rng.pick(&["6", "7", "1"]);
            let mut groups: Vec<String> = (0..4).map(|_| digits(rng, 2)).collect();
            if lead == "7" {
                groups[0] = format!("{}{}", 3 + rng.below(7), rng.digit());
            } else if lead == "6" {
                groups[0] = format!(
                    "{}{}",
                    rng.pick(&["0", "1", "2", "4", "5", "6", "7", "8"]),
                    rng.digit()
                );
            }
            let g = groups.join(" ");
            if national {
                format!("0{lead} {g}")
            } else {
                format!("+33 {lead} {g}")
            }
        }
        "IN" => {
            let first = *rng.pick(&["9", "8", "7"]);
            let a = format!("{first}{}", digits(rng, 4));
            let b = digits(rng, 5);
            match rng.below(3) {
                0 => format!("+91 {a} {b}"),
                1 => format!("0{a} {b}"),
                _ => format!("+91-{a}{b}"),
            }
        }
        "BR" => {
            let area = *rng.pick(&["11", "21", "31", "41", "61"]);
            let a = format!("9{}", digits(rng, 4));
            let b = digits(rng, 4);
            if national {
                format!("({area}) {a}-{b}")
            } else {
                format!("+55 {area} {a}-{b}")
            }
        }
        _ => {
            // NANP: NXX-555-01XX, the fictional exchange block.
            let area = *rng.pick(&["212", "415", "312", "617", "206", "512"]);
            let tail = digits(rng, 2);
            match rng.below(6) {
                0 => format!("({area}) 555-01{tail}"),
                1 => format!("+1 {area} 555 01{tail}"),
                2 => format!("{area}-555-01{tail}"),
                // Dotted, with an extension, and an area code no plan allocates (1xx).
                3 => format!("{area}.555.01{tail}"),
                4 => format!("{area}-555-01{tail}x{}", digits(rng, 3)),
                _ => format!("1{}-555-01{tail}", digits(rng, 2)),
            }
        }
    }
}

/// A web URL.
pub fn url(rng: &mut Rng) -> String {
    let host = rng.pick(crate::vocab::URL_HOSTS);
    let path = rng.pick(crate::vocab::URL_PATHS);
    if rng.chance(0.2) {
        format!("www.{}/{path}", host.trim_start_matches("www."))
    } else {
        format!("https://{host}/{path}")
    }
}

/// A member's profile URL.
pub fn profile_url(handle: &str) -> String {
    format!("https://www.linkedin.com/in/{handle}")
}

/// An IPv4 or IPv6 address.
pub fn ip_address(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("203.0.113.{}", rng.below(255) + 1),
        1 => format!(
            "{}.{}.{}.{}",
            rng.below(223) + 1,
            rng.below(256),
            rng.below(256),
            rng.below(254) + 1
        ),
        _ => format!(
            "2001:db8:{:x}::{:x}",
            rng.below(0xffff) + 1,
            rng.below(0xffff) + 1
        ),
    }
}

/// The Luhn check digit for `payload` (digits only).
pub fn luhn_check_digit(payload: &str) -> char {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// A card number that passes Luhn, grouped by 4 or compact: Visa or Mastercard (16 digits),
/// or one of the other issuers (Diners 14, UATP 15, UnionPay, JCB 16, Maestro 12).
pub fn credit_card(rng: &mut Rng) -> String {
    let (prefix, len) = match rng.below(8) {
        0..=2 => ("4".to_owned(), 16),
        3..=4 => (format!("5{}", rng.below(5) + 1), 16),
        5 => (
            (*rng.pick(&["36", "305", "62", "3530", "1"])).to_owned(),
            16,
        ),
        6 => ("36".to_owned(), 14),
        _ => ("5018".to_owned(), 12),
    };
    let len = match prefix.as_str() {
        "305" => 14,
        "1" => 15,
        _ => len,
    };
    let mut number = prefix.clone();
    number.push_str(&digits(rng, len - 1 - prefix.len()));
    number.push(luhn_check_digit(&number));
    match rng.below(3) {
        0 => number,
        1 => group(&number, 4, ' '),
        _ => group(&number, 4, '-'),
    }
}

fn group(s: &str, n: usize, sep: char) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / n);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && i % n == 0 {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// ISO 13616 check digits for `country` + `bban`.
pub fn iban_check_digits(country: &str, bban: &str) -> String {
    let rearranged = format!("{bban}{country}00");
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    format!("{:02}", 98 - rem)
}

/// A valid IBAN (DE, GB, FR or ES), grouped by 4 or compact.
pub fn iban(rng: &mut Rng) -> String {
    let (country, bban) = match rng.below(4) {
        0 => ("DE", digits(rng, 18)),
        1 => {
            let bank: String = (0..4)
                .map(|_| char::from(b'A' + rng.below(26) as u8))
                .collect();
            ("GB", format!("{bank}{}", digits(rng, 14)))
        }
        2 => ("FR", digits(rng, 23)),
        _ => ("ES", digits(rng, 20)),
    };
    let iban = format!("{country}{}{bban}", iban_check_digits(country, &bban));
    if rng.chance(0.5) {
        group(&iban, 4, ' ')
    } else {
        iban
    }
}

/// A UK National Insurance number with a valid prefix and suffix.
pub fn uk_nino(rng: &mut Rng) -> String {
    const FIRST: &[u8] = b"ABCEGHJKLMNOPRSTWXYZ";
    const SECOND: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
    const BANNED: &[&str] = &["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"];
    let prefix = loop {
        let p: String = [*rng.pick(FIRST), *rng.pick(SECOND)]
            .iter()
            .map(|b| char::from(*b))
            .collect();
        if !BANNED.contains(&p.as_str()) {
            break p;
        }
    };
    let d = digits(rng, 6);
    let suffix = char::from(b'A' + rng.below(4) as u8);
    if rng.chance(0.5) {
        format!("{prefix} {} {} {} {suffix}", &d[0..2], &d[2..4], &d[4..6])
    } else {
        format!("{prefix}{d}{suffix}")
    }
}

/// A US SSN in a valid range (area not 000, 666 or 9xx; group and serial not zero).
pub fn us_ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.below(899) + 1;
        if a != 666 {
            break a;
        }
    };
    format!(
        "{area:03}-{:02}-{:04}",
        rng.below(99) + 1,
        rng.below(9999) + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn luhn_ok(s: &str) -> bool {
        let d: String = s.chars().filter(char::is_ascii_digit).collect();
        luhn_check_digit(&d[..d.len() - 1]) == d.chars().last().unwrap()
    }

    fn iban_ok(s: &str) -> bool {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
        let mut rem = 0u32;
        for c in rearranged.chars() {
            let v = c.to_digit(36).unwrap();
            rem = if v >= 10 {
                (rem * 100 + v) % 97
            } else {
                (rem * 10 + v) % 97
            };
        }
        rem == 1
    }

    #[test]
    fn generated_identifiers_pass_their_checks() {
        let mut rng = Rng::for_entity(1, Stream::Content, 1);
        assert_eq!(luhn_check_digit("7992739871"), '3');
        assert_eq!(iban_check_digits("GB", "WEST12345698765432"), "82");
        for _ in 0..1000 {
            assert!(luhn_ok(&credit_card(&mut rng)));
            assert!(iban_ok(&iban(&mut rng)));
            let ssn = us_ssn(&mut rng);
            assert!(!ssn.starts_with("000") && !ssn.starts_with("666") && !ssn.starts_with('9'));
            let nino = uk_nino(&mut rng);
            assert!(nino.len() == 9 || nino.len() == 13, "{nino}");
        }
    }

    #[test]
    fn ascii_fold_keeps_letters() {
        assert_eq!(ascii_fold("José Müller-Łukasz"), "josemullerlukasz");
        assert_eq!(ascii_fold("王"), "");
    }
}
