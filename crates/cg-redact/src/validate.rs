//! Cheap validators run on candidates only: Luhn and card issuer ranges, IBAN (checksum and
//! per-country length, via `iban_validate`), NINO and SSN rules, IP parsing. Phone numbers are
//! judged by their shape and context in the scanner ([`crate::scan`]), not by numbering plans:
//! for minimisation a number a plan does not allocate is still somebody's number.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Luhn check over the digits of `s` (separators ignored).
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u8> = s
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    !digits.is_empty() && luhn_digits(&digits)
}

/// Issuer identification ranges: `(first prefix, last prefix, prefix digits, lengths)`.
/// Sources: ISO/IEC 7812 issuer ranges as published by the schemes (Visa, Mastercard incl. the
/// 2-series, American Express, Discover incl. 644–649 and the UnionPay co-brand range, Diners
/// Club International, JCB, UnionPay, Maestro, RuPay, Mir, UATP, Troy, Verve, Dankort,
/// InterPayment, InstaPayment).
const ISSUERS: &[(u32, u32, u32, &[usize])] = &[
    (4, 4, 1, &[13, 16, 19]),           // Visa (and Visa Electron, Elo 4xxx)
    (51, 55, 2, &[16]),                 // Mastercard
    (2221, 2720, 4, &[16]),             // Mastercard 2-series
    (34, 34, 2, &[15]),                 // American Express
    (37, 37, 2, &[15]),                 // American Express
    (6011, 6011, 4, &[16, 17, 18, 19]), // Discover
    (644, 649, 3, &[16, 17, 18, 19]),   // Discover
    (65, 65, 2, &[16, 17, 18, 19]),     // Discover, RuPay
    (622_126, 622_925, 6, &[16, 17, 18, 19]), // Discover / UnionPay
    (300, 305, 3, &[14, 15, 16, 17, 18, 19]), // Diners Club International
    (3095, 3095, 4, &[14, 15, 16, 17, 18, 19]), // Diners Club International
    (36, 36, 2, &[14, 15, 16, 17, 18, 19]), // Diners Club International
    (38, 39, 2, &[14, 15, 16, 17, 18, 19]), // Diners Club
    (3528, 3589, 4, &[16, 17, 18, 19]), // JCB
    (62, 62, 2, &[16, 17, 18, 19]),     // UnionPay
    (81, 81, 2, &[16, 17, 18, 19]),     // UnionPay, RuPay
    (82, 82, 2, &[16]),                 // RuPay
    (60, 60, 2, &[16]),                 // RuPay
    (508, 508, 3, &[16]),               // RuPay
    (353, 353, 3, &[16]),               // RuPay / JCB co-brand
    (356, 356, 3, &[16]),               // RuPay / JCB co-brand
    (50, 50, 2, &[12, 13, 14, 15, 16, 17, 18, 19]), // Maestro, Verve, Dankort
    (56, 69, 2, &[12, 13, 14, 15, 16, 17, 18, 19]), // Maestro (and other 6-series)
    (2200, 2204, 4, &[16, 17, 18, 19]), // Mir
    (1, 1, 1, &[15]),                   // UATP
    (9792, 9792, 4, &[16]),             // Troy
];

/// A payment card: 12–19 digits (separators ignored), a known issuer range for its length, and
/// Luhn.
pub fn credit_card(s: &str) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0;
    for b in s.bytes().filter(u8::is_ascii_digit) {
        if n == digits.len() {
            return false;
        }
        digits[n] = b - b'0';
        n += 1;
    }
    if !(12..=19).contains(&n) {
        return false;
    }
    let prefix = |k: u32| {
        digits[..k as usize]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(*d))
    };
    let issuer = ISSUERS
        .iter()
        .any(|(lo, hi, k, lengths)| lengths.contains(&n) && (*lo..=*hi).contains(&prefix(*k)));
    issuer && luhn_digits(&digits[..n])
}

fn luhn_digits(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
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
        // Issuers beyond the big four, compact: Maestro (12), Diners (14), UATP (15),
        // UnionPay and JCB (16).
        assert!(credit_card("501800000009"));
        assert!(credit_card("30569309025904"));
        assert!(credit_card("6200000000000005"));
        assert!(credit_card("3530111333300000"));
        assert!(!credit_card("30569309025905"));
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
}
