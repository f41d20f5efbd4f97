//! Keys that take one word from a fixed list (`outbound.mode`,
//! `outbound.smarthost_tls`, `two_step.sms_provider`). Each is an enum that
//! implements [`Choice`]: its words are listed once, and serde reads them from that
//! list. [`screen`] checks the raw file before the typed parse, so a wrong word is
//! reported with the key, the word and the words accepted, together with the
//! file's other problems.

use serde::Deserializer;
use serde::de::{Error as _, Unexpected};

/// An enum read from one configuration word.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// The section the key lives in, e.g. `outbound`.
    const SECTION: &'static str;
    /// The key within its section, e.g. `mode`.
    const KEY: &'static str;
    /// Every word (exactly as written in the file) and the value it names.
    const WORDS: &'static [(&'static str, Self)];

    /// Whether this version serves the value. A word may be known before it
    /// works (`outbound.mode = "mx"`): the section's check refuses it, and the
    /// accepted words listed in problems leave it out.
    fn available(self) -> bool {
        true
    }

    /// The word that names `self` in the file.
    fn word(self) -> &'static str {
        Self::WORDS
            .iter()
            .find(|(_, value)| *value == self)
            .map_or("?", |(word, _)| word)
    }

    /// The value a word names, if it is one of [`Choice::WORDS`].
    fn from_word(word: &str) -> Option<Self> {
        Self::WORDS.iter().find(|(w, _)| *w == word).map(|(_, value)| *value)
    }
}

/// `section.key` for problems.
pub fn key<T: Choice>() -> String {
    format!("{}.{}", T::SECTION, T::KEY)
}

/// The words accepted today, as prose: `outbox or smarthost`, `starttls, tls or none`.
pub fn accepted<T: Choice>() -> String {
    let words: Vec<&str> = T::WORDS
        .iter()
        .filter(|(_, value)| value.available())
        .map(|(word, _)| *word)
        .collect();
    match words.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Serde's entry point for a [`Choice`] (each enum's `Deserialize` calls it).
pub fn deserialize<'de, T: Choice, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
    let word = <String as serde::Deserialize>::deserialize(deserializer)?;
    T::from_word(&word).ok_or_else(|| {
        D::Error::invalid_value(
            Unexpected::Str(&word),
            &format!("{} to be {}", key::<T>(), accepted::<T>()).as_str(),
        )
    })
}

/// Checks the key in the raw file: a value that is not one of the words becomes a
/// problem and is removed, so the typed parse goes on to report everything else.
pub fn screen<T: Choice>(table: &mut toml::Table, problems: &mut Vec<String>) {
    let Some(section) = table.get_mut(T::SECTION).and_then(toml::Value::as_table_mut) else {
        return;
    };
    let Some(value) = section.get(T::KEY) else {
        return;
    };
    if value.as_str().and_then(T::from_word).is_none() {
        problems.push(format!("{} {value} must be {}", key::<T>(), accepted::<T>()));
        section.remove(T::KEY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Colour {
        Red,
        Green,
        Blue,
    }

    impl Choice for Colour {
        const SECTION: &'static str = "paint";
        const KEY: &'static str = "colour";
        const WORDS: &'static [(&'static str, Self)] =
            &[("red", Self::Red), ("green", Self::Green), ("blue", Self::Blue)];

        fn available(self) -> bool {
            self != Self::Blue
        }
    }

    impl<'de> serde::Deserialize<'de> for Colour {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserialize(deserializer)
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Paint {
        colour: Colour,
    }

    #[test]
    fn words_name_values_both_ways_and_unavailable_ones_are_not_offered() {
        assert_eq!(Colour::from_word("green"), Some(Colour::Green));
        assert_eq!(Colour::from_word("Green"), None, "words are exact, as in the file");
        assert_eq!(Colour::Blue.word(), "blue");
        assert_eq!(accepted::<Colour>(), "red or green");
        assert_eq!(key::<Colour>(), "paint.colour");
    }

    #[test]
    fn serde_reads_a_word_and_a_wrong_one_names_the_key_and_the_words() {
        let paint: Paint = toml::from_str("colour = \"blue\"").unwrap();
        assert_eq!(
            paint.colour,
            Colour::Blue,
            "known words parse; the section's check decides"
        );
        let error = toml::from_str::<Paint>("colour = \"mauve\"").unwrap_err().to_string();
        assert!(error.contains("mauve"), "{error}");
        assert!(error.contains("paint.colour to be red or green"), "{error}");
    }

    #[test]
    fn screen_reports_a_wrong_value_and_removes_it_so_parsing_goes_on() {
        let mut table: toml::Table = "[paint]\ncolour = \"mauve\"\nsize = 3".parse().unwrap();
        let mut problems = Vec::new();
        screen::<Colour>(&mut table, &mut problems);
        assert_eq!(problems, ["paint.colour \"mauve\" must be red or green"]);
        assert!(table["paint"].get("colour").is_none());
        assert_eq!(table["paint"]["size"].as_integer(), Some(3), "other keys stay");

        let mut table: toml::Table = "[paint]\ncolour = 7".parse().unwrap();
        screen::<Colour>(&mut table, &mut problems);
        assert_eq!(problems[1], "paint.colour 7 must be red or green", "not a string");

        let mut table: toml::Table = "[paint]\ncolour = \"red\"".parse().unwrap();
        let mut none = Vec::new();
        screen::<Colour>(&mut table, &mut none);
        screen::<Colour>(&mut toml::Table::new(), &mut none);
        assert!(none.is_empty(), "{none:?}");
        assert_eq!(table["paint"]["colour"].as_str(), Some("red"));
    }
}
