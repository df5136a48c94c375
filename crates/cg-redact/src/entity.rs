//! The entity types the engine finds, with their stable upper-case names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A kind of personal data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum EntityType {
    /// E-mail address.
    Email,
    /// Phone number (international or national format).
    Phone,
    /// URL (including members' profile URLs).
    Url,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// Payment card number (Luhn-valid).
    CreditCard,
    /// IBAN (checksum-valid).
    IbanCode,
    /// UK National Insurance number.
    UkNino,
    /// US Social Security number.
    UsSsn,
    /// An @handle.
    Mention,
    /// A person's name (gazetteer or common first/last name pair).
    Person,
    /// A custom pattern from config.
    Custom(String),
}

impl EntityType {
    /// The built-in types.
    pub const BUILT_IN: [EntityType; 10] = [
        EntityType::Email,
        EntityType::Phone,
        EntityType::Url,
        EntityType::IpAddress,
        EntityType::CreditCard,
        EntityType::IbanCode,
        EntityType::UkNino,
        EntityType::UsSsn,
        EntityType::Mention,
        EntityType::Person,
    ];

    /// The stable name (`EMAIL`, `PHONE`, ..., or the custom name).
    pub fn as_str(&self) -> &str {
        match self {
            EntityType::Email => "EMAIL",
            EntityType::Phone => "PHONE",
            EntityType::Url => "URL",
            EntityType::IpAddress => "IP_ADDRESS",
            EntityType::CreditCard => "CREDIT_CARD",
            EntityType::IbanCode => "IBAN_CODE",
            EntityType::UkNino => "UK_NINO",
            EntityType::UsSsn => "US_SSN",
            EntityType::Mention => "MENTION",
            EntityType::Person => "PERSON",
            EntityType::Custom(name) => name,
        }
    }
}

impl From<String> for EntityType {
    fn from(s: String) -> Self {
        EntityType::BUILT_IN
            .into_iter()
            .find(|t| t.as_str() == s)
            .unwrap_or(EntityType::Custom(s))
    }
}

impl From<EntityType> for String {
    fn from(t: EntityType) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
