//! Person names without a model: capitalised words checked against given-name and surname
//! lists (the U.S. Census 1990 lists in `data/`, public domain, plus the hand-written
//! international lists below) and context.
//!
//! A span is a PERSON when
//!
//! 1. a given name is followed by a surname (`Maria Garcia`, `Wei Zhang`, a third surname word
//!    joins: `Ana García López`);
//! 2. a given name is followed by name particles and a capitalised word (`Rafael de Vries`,
//!    `Camila van Dijk`);
//! 3. a title precedes one or two capitalised words (`Dr. Okafor`, `Frau Schmidt`);
//! 4. a given name and a capitalised word follow a cue word (`with`, `by`, `thanks`, `dear`,
//!    `hi`, `—`, ...): `working with Eoin Okafor`.
//!
//! Words that are common capitalised non-names (months, days, places of the calendar and the
//! office) never count as the surname of a pair.

use rustc_hash::FxHashMap;

/// Common given names.
pub static FIRST: &[&str] = &[
    "Aaron",
    "Adam",
    "Adrian",
    "Ahmed",
    "Aisha",
    "Alan",
    "Albert",
    "Alejandro",
    "Alex",
    "Alexander",
    "Alice",
    "Alina",
    "Amanda",
    "Amara",
    "Amelia",
    "Amit",
    "Ana",
    "Ananya",
    "Andrea",
    "Andrew",
    "Angela",
    "Anna",
    "Anne",
    "Anthony",
    "Antonio",
    "Arjun",
    "Ashley",
    "Ava",
    "Barbara",
    "Benjamin",
    "Björn",
    "Brian",
    "Camila",
    "Carlos",
    "Carmen",
    "Caroline",
    "Catherine",
    "Charles",
    "Charlotte",
    "Chen",
    "Chidi",
    "Chloé",
    "Chloe",
    "Christian",
    "Christopher",
    "Claire",
    "Daniel",
    "David",
    "Deepak",
    "Diana",
    "Diego",
    "Dmitri",
    "Elena",
    "Elif",
    "Elizabeth",
    "Emily",
    "Emma",
    "Eoin",
    "Eric",
    "Ethan",
    "Fatima",
    "Felix",
    "Fernando",
    "François",
    "Gabriel",
    "Gabriela",
    "George",
    "Giulia",
    "Grace",
    "Hannah",
    "Harry",
    "Hiroshi",
    "Ines",
    "Ingrid",
    "Isabella",
    "Ivan",
    "Jack",
    "Jacob",
    "James",
    "Jan",
    "Jane",
    "Javier",
    "Jennifer",
    "Jessica",
    "Joao",
    "João",
    "John",
    "Jonathan",
    "Jose",
    "José",
    "Joseph",
    "Juan",
    "Julia",
    "Karen",
    "Kevin",
    "Kwame",
    "Laura",
    "Lea",
    "Léa",
    "Leon",
    "Liam",
    "Linda",
    "Lisa",
    "Lucas",
    "Lucia",
    "Luis",
    "Łukasz",
    "Lukas",
    "Maria",
    "María",
    "Marco",
    "Mark",
    "Martin",
    "Mary",
    "Mateo",
    "Matthew",
    "Mehmet",
    "Mei",
    "Mia",
    "Michael",
    "Michelle",
    "Min-jun",
    "Mohammed",
    "Muhammad",
    "Nadia",
    "Natalia",
    "Nicole",
    "Noah",
    "Nora",
    "Olena",
    "Oliver",
    "Olivia",
    "Omar",
    "Pablo",
    "Patricia",
    "Paul",
    "Pedro",
    "Peter",
    "Pierre",
    "Priya",
    "Rachel",
    "Rafael",
    "Rahul",
    "Raj",
    "Rebecca",
    "Richard",
    "Robert",
    "Ryan",
    "Sam",
    "Samuel",
    "Sara",
    "Sarah",
    "Sebastian",
    "Sofia",
    "Sophie",
    "Søren",
    "Stephen",
    "Steven",
    "Susan",
    "Thomas",
    "Tom",
    "Tomás",
    "Valentina",
    "Victoria",
    "Wei",
    "William",
    "Yuki",
    "Zoë",
    "Zoe",
];

/// Common surnames.
pub static LAST: &[&str] = &[
    "Adams",
    "Ahmed",
    "Ali",
    "Allen",
    "Anderson",
    "Andersson",
    "Bakker",
    "Baker",
    "Brown",
    "Campbell",
    "Chen",
    "Clark",
    "Costa",
    "Davies",
    "Davis",
    "Dubois",
    "Evans",
    "Fernández",
    "Fernandez",
    "Ferrari",
    "Fischer",
    "Garcia",
    "García",
    "Gomez",
    "Gonzalez",
    "González",
    "Green",
    "Gupta",
    "Hall",
    "Hansen",
    "Harris",
    "Hernandez",
    "Hill",
    "Horvat",
    "Ivanova",
    "Ivanov",
    "Jackson",
    "Jensen",
    "Johansson",
    "Johnson",
    "Jones",
    "Kaya",
    "Kelly",
    "Khan",
    "Kim",
    "King",
    "Kowalski",
    "Kumar",
    "Lee",
    "Lefèvre",
    "Lewis",
    "Li",
    "Lopez",
    "López",
    "Martin",
    "Martinez",
    "Martínez",
    "Mensah",
    "Miller",
    "Moore",
    "Moreau",
    "Müller",
    "Mueller",
    "Murphy",
    "Nguyen",
    "Nguyễn",
    "Nielsen",
    "Novak",
    "Nowak",
    "Okafor",
    "Oliveira",
    "Papadopoulos",
    "Park",
    "Patel",
    "Pereira",
    "Perez",
    "Pérez",
    "Petrov",
    "Roberts",
    "Robinson",
    "Rodriguez",
    "Rodríguez",
    "Romero",
    "Rossi",
    "Russo",
    "Sanchez",
    "Sánchez",
    "Santos",
    "Schmidt",
    "Schneider",
    "Scott",
    "Sharma",
    "Shevchenko",
    "Silva",
    "Singh",
    "Smith",
    "Souza",
    "Suzuki",
    "Tanaka",
    "Taylor",
    "Thomas",
    "Thompson",
    "Tran",
    "Walker",
    "Wang",
    "White",
    "Williams",
    "Wilson",
    "Wiśniewska",
    "Wright",
    "Yılmaz",
    "Young",
    "Zhang",
];

/// The census lists (see `data/README.md`).
const CENSUS_GIVEN: &str = include_str!("../data/census-1990-given.txt");
const CENSUS_SURNAMES: &str = include_str!("../data/census-1990-surnames.txt");

/// Titles before a name (folded).
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lady", "lord", "herr", "frau",
    "mme", "mlle", "monsieur", "madame", "sr", "sra", "srta", "senor", "senora", "sig", "sigra",
    "dott", "dottssa", "pan", "pani", "dhr", "mevr",
];

/// Words before a name that make a given name and a capitalised word a name (folded).
const CUES: &[&str] = &[
    "with",
    "by",
    "thanks",
    "thank",
    "dear",
    "hi",
    "hello",
    "hey",
    "congrats",
    "congratulations",
    "welcome",
    "ask",
    "meet",
    "met",
    "cc",
    "from",
    "and",
    "to",
    "via",
    "feat",
    "ft",
    "directed",
    "written",
    "married",
    "mit",
    "von",
    "und",
    "avec",
    "par",
    "et",
    "con",
    "por",
    "y",
    "di",
    "e",
    "met",
    "door",
    "en",
    "z",
    "przez",
    "i",
];

/// Particles inside a name (folded).
const PARTICLES: &[&str] = &[
    "de", "da", "di", "del", "della", "dos", "das", "do", "du", "van", "von", "der", "den", "ter",
    "le", "la", "bin", "ibn", "al", "el", "ben", "mac", "af", "zu",
];

/// Capitalised words that are not surnames after a given name (folded).
const NOT_SURNAMES: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "day",
    "week",
    "month",
    "year",
    "today",
    "tomorrow",
    "street",
    "road",
    "avenue",
    "lane",
    "square",
    "park",
    "city",
    "town",
    "hill",
    "center",
    "centre",
    "hall",
    "house",
    "office",
    "team",
    "group",
    "company",
    "inc",
    "ltd",
    "llc",
    "corp",
    "bank",
    "church",
    "school",
    "college",
    "university",
    "institute",
    "hospital",
    "club",
    "award",
    "awards",
    "prize",
    "foundation",
    "project",
    "program",
    "programme",
    "conference",
    "summit",
    "report",
    "news",
    "post",
    "times",
    "journal",
    "press",
    "media",
    "studio",
    "studios",
    "music",
    "film",
    "show",
    "series",
    "festival",
    "cup",
    "league",
    "games",
    "north",
    "south",
    "east",
    "west",
    "island",
    "islands",
    "river",
    "lake",
    "mountain",
    "valley",
    "beach",
    "bay",
    "airport",
    "station",
    "market",
    "store",
    "shop",
    "cafe",
    "restaurant",
    "hotel",
    "tower",
    "bridge",
    "platform",
    "cloud",
    "data",
    "ai",
    "api",
    "app",
    "web",
    "online",
    "digital",
    "global",
    "international",
    "national",
    "new",
    "old",
    "great",
    "good",
    "best",
    "first",
    "last",
    "next",
    "and",
    "or",
    "the",
    "of",
    "for",
    "is",
    "was",
    "will",
    "can",
    "love",
    "hope",
    "power",
    "energy",
    "health",
    "care",
    "life",
    "world",
    "time",
    "white",
    "black",
    "green",
    "gray",
    "grey",
    "brown",
    "red",
    "blue",
    "gold",
    "silver",
    "long",
    "short",
    "young",
    "little",
    "christmas",
    "easter",
    "english",
    "french",
    "german",
    "spanish",
    "italian",
    "dutch",
    "polish",
    "chinese",
    "indian",
    "american",
    "european",
    "british",
];

/// Given names that are everyday words too: followed by a surname they make a name only after
/// a cue or with particles (`Will Young` at a sentence start is too weak).
const AMBIGUOUS_GIVEN: &[&str] = &[
    "may",
    "will",
    "grace",
    "hope",
    "faith",
    "joy",
    "june",
    "april",
    "rose",
    "mark",
    "bill",
    "frank",
    "art",
    "guy",
    "bob",
    "pat",
    "sue",
    "rob",
    "sunny",
    "summer",
    "dawn",
    "eve",
    "ivy",
    "iris",
    "lily",
    "daisy",
    "ruby",
    "amber",
    "crystal",
    "hunter",
    "mason",
    "carter",
    "page",
    "chase",
    "hazel",
    "jean",
    "sky",
    "rich",
    "drew",
    "wade",
    "gene",
    "don",
    "ray",
    "max",
    "victor",
    "major",
    "king",
    "earl",
    "rusty",
    "buck",
    "destiny",
    "harmony",
    "melody",
    "autumn",
    "storm",
    "river",
    "rain",
    "royal",
    "angel",
    "star",
    "august",
    "march",
    "new",
    "young",
    "long",
    "white",
    "black",
    "green",
    "brown",
    "gray",
    "little",
    "christian",
    "paris",
    "london",
    "dallas",
    "austin",
    "houston",
    "jordan",
    "lincoln",
    "washington",
];

/// Bits of [`Names`]' word table: which lists a folded word is in.
const TITLE: u8 = 1;
const CUE: u8 = 2;
const PARTICLE: u8 = 4;
const NOT_SURNAME: u8 = 8;
const AMBIGUOUS: u8 = 16;
const GIVEN: u8 = 32;
const SURNAME: u8 = 64;

/// A folded word of at most [`KEY_BYTES`]` - 1` bytes, zero-padded: keys compare as three
/// machine words, with no pointer to follow (words hold no NUL byte, so padding is unambiguous).
type Key = [u8; KEY_BYTES];
const KEY_BYTES: usize = 24;

/// The key of `word` (folded), or `None` when it is empty or too long to be in a list.
fn key(word: &[u8]) -> Option<Key> {
    let mut buf = [0u8; KEY_BYTES];
    let n = fold(word, &mut buf);
    (n > 0 && n < KEY_BYTES).then_some(buf)
}

/// Every list word, folded (lower case, Latin-1 accents removed), with the lists it is in: one
/// hash lookup answers every question about a word.
#[derive(Debug)]
pub(crate) struct Names {
    words: FxHashMap<Key, u8>,
    /// A Bloom filter (8 KiB, two probes) of the words that can start a name (given names and
    /// titles): most capitalised words are answered here, in the first-level cache, without
    /// touching the 2 MiB table.
    starters: Box<[u64; STARTER_WORDS]>,
}

const STARTER_WORDS: usize = 1024;

/// The two filter bits of a key (from the high bits of one Fx hash).
fn starter_bits(key: &Key) -> [usize; 2] {
    use std::hash::BuildHasher;
    let h = rustc_hash::FxBuildHasher.hash_one(key);
    let mask = STARTER_WORDS * 64 - 1;
    [(h >> 48) as usize & mask, (h >> 32) as usize & mask]
}

impl Names {
    pub(crate) fn new() -> Names {
        let mut words: FxHashMap<Key, u8> = FxHashMap::default();
        let mut add = |w: &str, bit: u8, min_len: usize| {
            if w.len() >= min_len
                && let Some(k) = key(w.as_bytes())
            {
                *words.entry(k).or_default() |= bit;
            }
        };
        for (bit, list) in [
            (TITLE, TITLES),
            (CUE, CUES),
            (PARTICLE, PARTICLES),
            (NOT_SURNAME, NOT_SURNAMES),
            (AMBIGUOUS, AMBIGUOUS_GIVEN),
        ] {
            for w in list {
                add(w, bit, 2);
            }
        }
        for w in CENSUS_GIVEN.lines().chain(FIRST.iter().copied()) {
            add(w, GIVEN, 2);
        }
        for w in CENSUS_SURNAMES.lines().chain(LAST.iter().copied()) {
            add(w, SURNAME, 2);
        }
        // One-letter words of the small lists (`y`, `e`, `i`, `z`) too.
        for (bit, list) in [(CUE, CUES), (PARTICLE, PARTICLES)] {
            for w in list {
                add(w, bit, 1);
            }
        }
        let mut starters = Box::new([0u64; STARTER_WORDS]);
        for (k, bits) in &words {
            if bits & (GIVEN | TITLE) != 0 {
                for b in starter_bits(k) {
                    starters[b / 64] |= 1 << (b % 64);
                }
            }
        }
        Names { words, starters }
    }

    /// Whether `key` may be a given name or a title (false: certainly neither).
    fn may_start(&self, key: &Key) -> bool {
        starter_bits(key)
            .iter()
            .all(|b| self.starters[b / 64] & (1 << (b % 64)) != 0)
    }

    /// The list bits of a word.
    fn flags(&self, word: &[u8]) -> u8 {
        key(word).map_or(0, |k| self.words.get(&k).copied().unwrap_or(0))
    }

    /// Whether a cue word (or an em dash) stands right before the word at `i`.
    fn cue_before(&self, bytes: &[u8], i: usize) -> bool {
        let mut j = i;
        while j > 0 && bytes[j - 1] == b' ' {
            j -= 1;
        }
        if j >= 3 && &bytes[j - 3..j] == "—".as_bytes() {
            return true;
        }
        let e = j;
        while j > 0 && (bytes[j - 1].is_ascii_alphabetic() || bytes[j - 1] >= 0x80) {
            j -= 1;
        }
        e > j && self.flags(&bytes[j..e]) & CUE != 0
    }

    /// A PERSON span starting at the capitalised word at `i` (a word start), if any.
    pub(crate) fn find_at(&self, text: &str, i: usize) -> Option<(usize, usize)> {
        let bytes = text.as_bytes();
        let w1 = capitalised_word(text, i)?;
        let first = key(&bytes[i..w1])?;
        if !self.may_start(&first) {
            return None;
        }
        let first_flags = self.words.get(&first).copied().unwrap_or(0);
        let given = first_flags & GIVEN != 0;
        if !given && first_flags & TITLE != 0 {
            // `Dr. Okafor`, `Frau Schmidt`: one or two capitalised words after the title.
            let mut j = w1;
            if bytes.get(j) == Some(&b'.') {
                j += 1;
            }
            if bytes.get(j) != Some(&b' ') {
                return None;
            }
            let s = j + 1;
            let mut e = capitalised_word(text, s)?;
            if bytes.get(e) == Some(&b' ')
                && let Some(e2) = capitalised_word(text, e + 1)
                && !self.flags(&bytes[e + 1..e2]) & NOT_SURNAME != 0
            {
                e = e2;
            }
            return Some((s, e));
        }
        if !given {
            return None;
        }
        // Particles, then the surname.
        let mut j = w1;
        let mut particles = 0;
        loop {
            if bytes.get(j) != Some(&b' ') {
                return None;
            }
            let s = j + 1;
            let e = word_end(bytes, s);
            if e > s && self.flags(&bytes[s..e]) & PARTICLE != 0 && particles < 2 {
                particles += 1;
                j = e;
                continue;
            }
            break;
        }
        let s2 = j + 1;
        let w2 = capitalised_word(text, s2)?;
        let second = &bytes[s2..w2];
        let second_flags = self.flags(second);
        if second_flags & NOT_SURNAME != 0 {
            return None;
        }
        let surname = second_flags & SURNAME != 0 && first_flags & AMBIGUOUS == 0;
        if particles > 0 || surname || self.cue_before(bytes, i) {
            // A further surname word joins (`Ana García López`).
            let mut end = w2;
            if bytes.get(end) == Some(&b' ')
                && let Some(w3) = capitalised_word(text, end + 1)
                && self.flags(&bytes[end + 1..w3]) & (SURNAME | NOT_SURNAME) == SURNAME
            {
                end = w3;
            }
            return Some((i, end));
        }
        None
    }
}

/// Lower-cases ASCII letters and folds the Latin-1 letters with diacritics to their base
/// letter (`é` → `e`, `ü` → `u`); other bytes are kept as they are (so non-Latin names still
/// compare exactly). At most `buf.len()` bytes.
pub(crate) fn fold(word: &[u8], buf: &mut [u8]) -> usize {
    let mut n = 0;
    let mut k = 0;
    while k < word.len() && n < buf.len() {
        let b = word[k];
        if b == 0xC3 && k + 1 < word.len() {
            let c = word[k + 1] & 0x1F | 0x40;
            buf[n] = match c {
                0x40..=0x45 => b'a',
                0x47 => b'c',
                0x48..=0x4B => b'e',
                0x4C..=0x4F => b'i',
                0x51 => b'n',
                0x52..=0x56 | 0x58 => b'o',
                0x59..=0x5C => b'u',
                0x5D => b'y',
                _ => b's',
            };
            n += 1;
            k += 2;
        } else {
            buf[n] = b.to_ascii_lowercase();
            n += 1;
            k += 1;
        }
    }
    n
}

/// The end of the letters (and inner `'`/`-`) of a word starting at `s`.
fn word_end(bytes: &[u8], s: usize) -> usize {
    let mut e = s;
    while e < bytes.len()
        && (bytes[e].is_ascii_alphabetic()
            || bytes[e] >= 0x80
            || ((bytes[e] == b'\'' || bytes[e] == b'-')
                && bytes.get(e + 1).is_some_and(|b| b.is_ascii_alphabetic())))
    {
        e += 1;
    }
    e
}

/// The end of a capitalised word at `s` (an upper-case letter, then at least one lower-case
/// one), or `None`.
fn capitalised_word(text: &str, s: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    if let (Some(b0), Some(b1)) = (bytes.get(s), bytes.get(s + 1))
        && b0.is_ascii()
        && b1.is_ascii()
    {
        if !(b0.is_ascii_uppercase() && b1.is_ascii_lowercase()) {
            return None;
        }
        let e = word_end(bytes, s);
        return text.is_char_boundary(e).then_some(e);
    }
    let mut chars = text.get(s..)?.chars();
    let c0 = chars.next()?;
    let c1 = chars.next()?;
    if !(c0.is_uppercase() && c1.is_lowercase()) {
        return None;
    }
    let e = word_end(text.as_bytes(), s);
    // Words end on a char boundary: `word_end` only stops at ASCII bytes.
    (e > s + 1 && text.is_char_boundary(e)).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_filter_has_no_false_negatives() {
        let names = Names::new();
        let mut starters = 0;
        for (k, bits) in &names.words {
            if bits & (GIVEN | TITLE) != 0 {
                starters += 1;
                assert!(names.may_start(k), "{:?}", String::from_utf8_lossy(k));
            }
        }
        assert!(starters > 5_000);
        // And it does filter: most surnames that are not given names are answered by it.
        let others: Vec<&Key> = names
            .words
            .iter()
            .filter(|(_, b)| **b & (GIVEN | TITLE) == 0)
            .map(|(k, _)| k)
            .collect();
        let passed = others.iter().filter(|k| names.may_start(k)).count();
        assert!(passed * 10 < others.len(), "{passed} of {}", others.len());
    }

    #[test]
    fn keys_fold_case_and_latin_accents() {
        assert_eq!(key("José".as_bytes()), key(b"jose"));
        assert_eq!(key(b"MARIA"), key(b"maria"));
        assert_eq!(key(b""), None);
        assert_eq!(key(&[b'a'; KEY_BYTES]), None);
    }
}
