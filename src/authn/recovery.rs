//! Single-use recovery codes.
//!
//! A code is 15 characters from a 31-symbol alphabet without look-alikes (no 0/o, 1/l/i), about
//! 74 bits, shown as `xxxxx-xxxxx-xxxxx`. The store keeps only a keyed hash of each code: with
//! this much entropy a keyed hash is enough and a slow password hash would add nothing.

use crate::secretbox::SecretBox;
use rand::Rng;

/// How many codes a user gets at a time.
pub const COUNT: usize = 10;
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const GROUPS: usize = 3;
const GROUP_LEN: usize = 5;
const MAC_PURPOSE: &str = "recovery";

/// A fresh set of codes, to be shown to the user once.
pub fn generate() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..COUNT)
        .map(|_| {
            let groups: Vec<String> = (0..GROUPS)
                .map(|_| (0..GROUP_LEN).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect())
                .collect();
            groups.join("-")
        })
        .collect()
}

/// What the user typed, in canonical form: lowercase, without whitespace or dashes.
pub fn normalize(input: &str) -> String {
    input.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect()
}

/// The hash stored in `Factors::recovery_hashes`: hex HMAC of the normalized code.
pub fn hash(secretbox: &SecretBox, code: &str) -> String {
    hex::encode(secretbox.mac(MAC_PURPOSE, normalize(code).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generates_ten_distinct_well_formed_codes() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let distinct: HashSet<&String> = codes.iter().collect();
        assert_eq!(distinct.len(), COUNT);
        for code in &codes {
            assert_eq!(code.len(), 17, "{} chars", code.len());
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3);
            for g in groups {
                assert_eq!(g.len(), 5);
                assert!(g.bytes().all(|b| ALPHABET.contains(&b)));
            }
            assert_eq!(normalize(code).len(), 15);
        }
    }

    #[test]
    fn entropy_is_at_least_60_bits() {
        let bits = (GROUPS * GROUP_LEN) as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 60.0, "{bits}");
        for confusable in [b'0', b'o', b'1', b'l', b'i'] {
            assert!(!ALPHABET.contains(&confusable));
        }
    }

    #[test]
    fn alphabet_is_used_roughly_uniformly() {
        let mut seen = HashSet::new();
        for _ in 0..20 {
            for code in generate() {
                seen.extend(normalize(&code).bytes());
            }
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn normalize_is_forgiving_about_case_spaces_and_dashes() {
        assert_eq!(normalize("AbCde-FGHjk-mnpqr"), "abcdefghjkmnpqr");
        assert_eq!(normalize("  abcde fghjk\tmnpqr \n"), "abcdefghjkmnpqr");
        assert_eq!(normalize("abc--de"), "abcde");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn hash_is_keyed_and_normalized() {
        let sb = SecretBox::new([3; 32]);
        let h = hash(&sb, "abcde-fghjk-mnpqr");
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(h, hash(&sb, "ABCDE FGHJK MNPQR"));
        assert_eq!(h, hash(&sb, "abcdefghjkmnpqr"));
        assert_ne!(h, hash(&sb, "abcde-fghjk-mnpqs"));
        assert_ne!(h, hash(&SecretBox::new([4; 32]), "abcde-fghjk-mnpqr"));
    }
}
