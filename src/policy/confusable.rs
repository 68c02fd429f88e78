//! Non-ASCII characters that some reader of a path turns into something else, so that a path
//! the route table sees as `/admın` is `/admin` to the app. Used by `normalize` to refuse them.
//!
//! Where each class comes from (and who reads it that way):
//!
//! | class | source | examples | readers |
//! |---|---|---|---|
//! | case mapping onto ASCII | UnicodeData simple mappings, SpecialCasing, CaseFolding.txt (std's `to_uppercase`/`to_lowercase` implement them) | `ı`→`I`, `İ`→`i̇`, `ſ`→`S`, `K`→`k`, `ß`→`SS`, `ﬀ`→`FF`, `ǰ`→`J̌` | Java `equalsIgnoreCase`/`toUpperCase`, JS/Python `upper()`, `casefold()`, .NET `ToUpperInvariant` |
//! | compatibility decomposition onto ASCII | NFKC (UAX #15), via `unicode-normalization` | fullwidth U+FF01–FF5E (`ａｄｍｉｎ`, `／`, `．`), mathematical alphanumerics U+1D400–1D7FF, ligatures U+FB00–FB06, `Ⓐ`, `ⅰ`, `ℓ`, `ª`, `²`, `‥`→`..`, `℀`→`a/c`, NBSP→space | Python `unicodedata.normalize`, .NET `Normalize(FormKC)`, IDNA/UTS #46, WAFs that normalize |
//! | both in a row | NFKC then case, case then NFKC | `𝚤` (U+1D6A4) →NFKC `ı` →upper `I` | stacks that do both |
//! | invisible | `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt), table below | soft hyphen, ZWSP, ZWJ, BOM, bidi controls, variation selectors, tags | NFKC_Casefold / UTS #46 drop them; old .NET `Trim()` dropped ZWSP and BOM |
//! | C1 controls, non-ASCII whitespace | `char::is_control` (Cc), `char::is_whitespace` (White_Space) | NEL U+0085, U+2028, U+3000 | .NET/Python `Trim()`/`strip()`, line-oriented parsers |
//! | slash and backslash look-alikes not folded by NFKC | Windows "best fit" code-page conversion (the WorstFit research, 2024) and visual look-alikes, table below | `∕` U+2215, `⁄` U+2044, `∖` U+2216, `¥` (cp932), `₩` (cp949) | Windows apps using ANSI APIs |
//!
//! A character is judged alone: NFKC composition only ever produces non-ASCII characters, so a
//! string folds onto ASCII exactly when one of its characters does. Ordinary letters whose
//! folds stay non-ASCII (`é`, `Å`, `ж`, `日`) are not refused.
//!
//! Not covered: Windows best-fit maps many more letters onto ASCII (`ā`→`a`); accent-insensitive
//! comparisons (database collations such as MySQL's `_ci`) equate `á` with `a`; look-alikes
//! from other scripts (Cyrillic `а`) are not folded by any common reader and are left alone.

use unicode_normalization::UnicodeNormalization;

/// Default_Ignorable_Code_Point, from Unicode's DerivedCoreProperties.txt (inclusive ranges).
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{115F}', '\u{1160}'),   // Hangul choseong and jungseong fillers
    ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
    ('\u{180B}', '\u{180F}'),   // Mongolian free variation selectors, vowel separator
    ('\u{200B}', '\u{200F}'),   // zero width space, ZWNJ, ZWJ, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{206F}'),   // word joiner, invisible operators, bidi isolates, deprecated
    ('\u{3164}', '\u{3164}'),   // Hangul filler
    ('\u{FE00}', '\u{FE0F}'),   // variation selectors
    ('\u{FEFF}', '\u{FEFF}'),   // zero width no-break space (BOM)
    ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
    ('\u{FFF0}', '\u{FFF8}'),   // reserved
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol beam and phrase controls
    ('\u{E0000}', '\u{E0FFF}'), // tags, variation selectors supplement, reserved
];

/// Read as `/` or `\` by some reader although NFKC leaves them alone.
const SLASH_LOOKALIKES: &[char] = &[
    '\u{00A5}', // YEN SIGN: `\` in the Windows cp932 (Japanese) best-fit table
    '\u{20A9}', // WON SIGN: `\` in the Windows cp949 (Korean) best-fit table
    '\u{2044}', // FRACTION SLASH
    '\u{2215}', // DIVISION SLASH: `/` in Windows best-fit tables
    '\u{2216}', // SET MINUS: `\` in Windows best-fit tables
    '\u{29F5}', // REVERSE SOLIDUS OPERATOR
    '\u{29F8}', // BIG SOLIDUS
    '\u{29F9}', // BIG REVERSE SOLIDUS
];

/// Why `c` may not appear in a path segment, or None for ASCII and ordinary non-ASCII.
pub fn refused_char(c: char) -> Option<&'static str> {
    if c.is_ascii() {
        return None;
    }
    if c.is_control() {
        return Some("control character");
    }
    if INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
        return Some("invisible character");
    }
    if c.is_whitespace() {
        return Some("non-ASCII whitespace");
    }
    if SLASH_LOOKALIKES.contains(&c) {
        return Some("look-alike of '/' or '\\'");
    }
    if folds_to_ascii(c) {
        return Some("non-ASCII character that folds to ASCII");
    }
    None
}

/// Whether NFKC or a case mapping of `c` (or the two in either order) contains ASCII.
fn folds_to_ascii(c: char) -> bool {
    any_ascii(std::iter::once(c).nfkc()) || any_ascii(c.to_uppercase().nfkc()) || any_ascii(c.to_lowercase().nfkc())
}

/// Whether one of `forms`, or an upper- or lower-case mapping of one, is ASCII.
fn any_ascii(mut forms: impl Iterator<Item = char>) -> bool {
    forms.any(|k| k.is_ascii() || k.to_uppercase().chain(k.to_lowercase()).any(|m| m.is_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_mappings_onto_ascii() {
        for c in ['ı', 'İ', 'ſ', '\u{212A}', 'ß', 'ẞ', 'ﬀ', 'ﬁ', 'ﬂ', 'ﬃ', 'ﬄ', 'ﬅ', 'ﬆ', 'ǰ', 'ŉ', 'ẖ', 'ẚ']
        {
            assert_eq!(refused_char(c), Some("non-ASCII character that folds to ASCII"), "{c:?} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn compatibility_forms_onto_ascii() {
        let mut cases: Vec<char> = ('\u{FF01}'..='\u{FF5E}').collect(); // the whole fullwidth ASCII block
        cases.extend([
            '𝐚', '𝖆', '𝚊', '𝟎', '𝟿', '𝚤', 'Ⓐ', 'ⓐ', '⒜', '🄰', 'ⅰ', 'Ⅿ', 'ℓ', 'ℐ', 'ℂ', 'ª', 'º', '²', 'ⁱ', 'ᵃ',
        ]);
        cases.extend(['‥', '․', '…', '℀', '﹒', '﹨', 'Ǆ', 'ǅ', 'Ĳ', '½', '①', '㎏', '™']);
        for c in cases {
            assert_eq!(refused_char(c), Some("non-ASCII character that folds to ASCII"), "{c:?} U+{:04X}", c as u32);
        }
    }

    #[test]
    fn invisible_whitespace_controls_and_slashes() {
        for c in
            ['\u{AD}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{202E}', '\u{FE0F}', '\u{E0041}']
        {
            assert_eq!(refused_char(c), Some("invisible character"), "U+{:04X}", c as u32);
        }
        for c in ['\u{85}', '\u{80}', '\u{9F}'] {
            assert_eq!(refused_char(c), Some("control character"), "U+{:04X}", c as u32);
        }
        for c in ['\u{1680}', '\u{2028}', '\u{2029}'] {
            assert_eq!(refused_char(c), Some("non-ASCII whitespace"), "U+{:04X}", c as u32);
        }
        // NBSP, ideographic and thin spaces are White_Space (and NFKC-fold to a space).
        for c in ['\u{A0}', '\u{3000}', '\u{2009}', '\u{202F}'] {
            assert_eq!(refused_char(c), Some("non-ASCII whitespace"), "U+{:04X}", c as u32);
        }
        for c in ['∕', '⁄', '∖', '¥', '₩', '⧸', '⧹', '⧵'] {
            assert_eq!(refused_char(c), Some("look-alike of '/' or '\\'"), "{c:?}");
        }
    }

    #[test]
    fn ordinary_letters_pass() {
        for c in
            ['é', 'É', 'Å', '\u{212B}', 'ñ', 'ж', 'а', 'Ω', '\u{2126}', 'ω', '日', '本', 'ü', 'ø', 'ç', 'ğ', 'ş', 'ł']
        {
            assert_eq!(refused_char(c), None, "{c:?} U+{:04X}", c as u32);
        }
        for c in ['a', 'Z', '0', '.', '~', ' '] {
            assert_eq!(refused_char(c), None, "ASCII is judged by normalize, not here");
        }
    }

    /// Every character whose NFKC form contains ASCII is refused: checked over all of Unicode.
    #[test]
    fn no_nfkc_fold_onto_ascii_is_missed() {
        let missed: Vec<String> = (0x80u32..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|&c| std::iter::once(c).nfkc().any(|k| k.is_ascii()) && refused_char(c).is_none())
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        assert!(missed.is_empty(), "{missed:?}");
    }
}
