//! Cheap validators run on candidates only: Luhn, IBAN (checksum and per-country length, via
//! `iban_validate`), NINO and SSN rules, IP parsing, and phone numbering plans (`phonenumber`).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Luhn check over the digits of `s` (separators ignored).
pub fn luhn(s: &str) -> bool {
    let mut sum = 0u32;
    let mut n = 0;
    for (i, b) in s.bytes().rev().filter(u8::is_ascii_digit).enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        n += 1;
    }
    n > 0 && sum.is_multiple_of(10)
}

/// A payment card: 13–19 digits, a known issuer prefix, and Luhn.
pub fn credit_card(s: &str) -> bool {
    let digits: String = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(char::from)
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let p2: u32 = digits[..2].parse().unwrap_or(0);
    let p4: u32 = digits[..4].parse().unwrap_or(0);
    let issuer = digits.starts_with('4')
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || digits.starts_with("6011")
        || p2 == 65
        || (3528..=3589).contains(&p4)
        || p2 == 36
        || p2 == 62;
    issuer && luhn(&digits)
}

/// An IBAN (spaces allowed): checksum and country format.
pub fn iban(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    iban::Iban::from_str(&compact).is_ok()
}

/// A UK National Insurance number: valid prefix and suffix.
pub fn uk_nino(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if compact.len() != 9 {
        return false;
    }
    let prefix = &compact[..2];
    const BANNED: [&[u8]; 7] = [b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"];
    !BANNED.contains(&prefix)
        && !b"DFIQUV".contains(&prefix[0])
        && !b"DFIOQUV".contains(&prefix[1])
        && compact[2..8].iter().all(u8::is_ascii_digit)
        && (b'A'..=b'D').contains(&compact[8])
}

/// A US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx; group and serial not zero.
pub fn us_ssn(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 3 {
        return false;
    }
    let area: u32 = parts[0].parse().unwrap_or(0);
    let group: u32 = parts[1].parse().unwrap_or(0);
    let serial: u32 = parts[2].parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// `ddd-dd-dddd`, whether or not the number is a valid SSN.
pub fn ssn_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[3] == b'-'
        && b[6] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 3 || i == 6 || c.is_ascii_digit())
}

/// An IPv4 address with octets ≤ 255 and no leading zeros.
pub fn ipv4(s: &str) -> bool {
    Ipv4Addr::from_str(s).is_ok()
}

/// An IPv6 address (at least two groups of hex).
pub fn ipv6(s: &str) -> bool {
    s.bytes().filter(|b| *b == b':').count() >= 2
        && s.bytes().any(|b| b.is_ascii_hexdigit())
        && Ipv6Addr::from_str(s).is_ok()
}

/// A phone number: 7–15 digits, not a date or a decimal, plausible by its shape, and valid in
/// its numbering plan (`phonenumber`, called only on plausible candidates): international
/// format by its country code; a national format in the hinted region, else in the regions
/// its shape suggests (US, GB, DE, FR, IN, BR).
pub fn phone(s: &str, hint: Option<&str>) -> bool {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    let decimal = s.bytes().filter(|b| *b == b'.').count() == 1
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !(7..=15).contains(&digits.len()) || decimal || looks_like_date(s) {
        return false;
    }
    let valid_in = |region: Option<phonenumber::country::Id>| {
        phonenumber::parse(region, s).is_ok_and(|n| phonenumber::is_valid(&n))
    };
    if s.starts_with('+') {
        return digits[0] != b'0' && valid_in(None);
    }
    let hinted = hint.and_then(|h| phonenumber::country::Id::from_str(h).ok());
    let candidates = plausible_regions(&digits, s);
    // `phonenumber` keeps one 100-entry LRU of compiled patterns for all regions; consulting it
    // for every author's country thrashes that cache (the profile showed regex compilation
    // dominating builds). Only the regions the number's shape suggests are consulted, the
    // hinted one first.
    if let Some(h) = hinted
        && candidates.contains(&h)
        && valid_in(Some(h))
    {
        return true;
    }
    candidates
        .into_iter()
        .filter(|r| Some(*r) != hinted)
        .any(|r| valid_in(Some(r)))
}

/// National formats each common region could be written in, judged by digit count and the
/// trunk prefix: NANP has no trunk `0` and 10 digits; the others start with `0` (BR also
/// `(AA)`-style area codes without it).
fn plausible_regions(digits: &[u8], s: &str) -> Vec<phonenumber::country::Id> {
    use phonenumber::country::Id;
    let n = digits.len();
    let mut out = Vec::with_capacity(3);
    if digits[0] == b'0' {
        if (10..=11).contains(&n) {
            out.push(Id::GB);
        }
        if (6..=12).contains(&n) {
            out.push(Id::DE);
        }
        if n == 10 {
            out.push(Id::FR);
        }
        if n == 11 {
            out.push(Id::IN);
        }
    } else {
        if n == 10 && digits[0] >= b'2' && digits[3] >= b'2' {
            out.push(Id::US);
        }
        if n == 10 && digits[0] >= b'6' {
            out.push(Id::IN);
        }
        if (10..=11).contains(&n) && s.trim_start().starts_with('(') {
            out.push(Id::BR);
        }
    }
    out
}

/// `2025-03-01`, `01.03.2025`, `1/3/2025`: three numeric groups with one separator kind, one of
/// them a plausible year.
fn looks_like_date(s: &str) -> bool {
    for sep in ['-', '.', '/'] {
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            let year = |p: &str| p.len() == 4 && p.starts_with(['1', '2']);
            let small = |p: &str| p.len() <= 2;
            if (year(parts[0]) && small(parts[1]) && small(parts[2]))
                || (small(parts[0]) && small(parts[1]) && (year(parts[2]) || parts[2].len() == 2))
            {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        assert!(credit_card("4111 1111 1111 1111"));
        assert!(credit_card("5555-5555-5555-4444"));
        assert!(credit_card("378282246310005"));
        assert!(!credit_card("4111 1111 1111 1112"));
        assert!(!credit_card("1234567890123452")); // Luhn-valid but no issuer
    }

    #[test]
    fn ibans() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("XX82WEST12345698765432"));
    }

    #[test]
    fn ninos_and_ssns() {
        assert!(uk_nino("AB 12 34 56 C"));
        assert!(uk_nino("JG103759A"));
        assert!(!uk_nino("GB123456A"));
        assert!(!uk_nino("DA123456A"));
        assert!(!uk_nino("AB123456E"));
        assert!(us_ssn("123-45-6789"));
        assert!(!us_ssn("000-45-6789"));
        assert!(!us_ssn("666-45-6789"));
        assert!(!us_ssn("912-45-6789"));
        assert!(!us_ssn("123-00-6789"));
    }

    #[test]
    fn ips() {
        assert!(ipv4("203.0.113.7"));
        assert!(!ipv4("256.1.1.1"));
        assert!(!ipv4("1.2.3"));
        assert!(ipv6("2001:db8::1"));
        assert!(ipv6("fe80::1ff:fe23:4567:890a"));
        assert!(!ipv6("12:30:45"));
        assert!(!ipv6("::"));
    }

    #[test]
    fn phones_in_national_and_international_formats() {
        for (p, hint) in [
            ("+44 20 7946 0958", None),
            ("020 7946 0958", Some("GB")),
            ("07700 900123", Some("GB")),
            ("(212) 555-0123", Some("US")),
            ("+1 415 555 0142", None),
            ("030 23125678", Some("DE")),
            ("+49 151 23456789", None),
            ("06 12 34 56 78", Some("FR")),
            ("+33 6 12 34 56 78", None),
            ("+91 98765 43210", None),
            ("098765 43210", Some("IN")),
            ("(11) 91234-5678", Some("BR")),
            ("+55 11 91234-5678", None),
            ("020 7946 0958", None), // fallback regions
        ] {
            assert!(phone(p, hint), "{p} {hint:?}");
        }
        for not in [
            "2025-03-01",
            "01.03.2025",
            "1/3/2025",
            "12345",
            "1234567",
            "+99 123",
            "3.14159265",
        ] {
            assert!(!phone(not, Some("US")), "{not}");
        }
    }
}
