//! Does a notification note look like it holds PHI? The note goes by ordinary
//! email, so the compose form warns as the sender types
//! (`portal/static/phi-warning.js`) and the server checks again here before
//! sending: dates (of birth), record or chart numbers, Social Security
//! numbers, phone numbers, and diagnosis words from a small shipped list
//! (`portal/static/phi-words.txt`). It warns and asks to confirm; it never
//! decides alone, and it is no filter: it only catches the obvious.

/// The diagnosis words, one a line (`#` starts a comment).
pub const WORDS: &str = include_str!("../../static/phi-words.txt");

/// The shipped words, lower-cased.
pub fn words() -> impl Iterator<Item = &'static str> {
    WORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Runs of digits and the separators people put between them.
fn number_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        let separator = matches!(c, '-' | '/' | '.' | ' ' | '(' | ')' | '+');
        if c.is_ascii_digit() || (separator && !current.is_empty()) {
            current.push(c);
        } else if !current.is_empty() {
            runs.push(std::mem::take(&mut current));
        }
    }
    runs.push(current);
    runs.into_iter()
        .map(|r| r.trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Digit groups of a run split on one separator kind, if it uses only that one.
fn groups(run: &str, separator: char) -> Option<Vec<usize>> {
    let groups: Vec<&str> = run.split(separator).collect();
    groups
        .iter()
        .all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
        .then(|| groups.iter().map(|g| g.len()).collect())
}

fn is_date(run: &str) -> bool {
    ['/', '-', '.'].into_iter().any(|sep| match groups(run, sep).as_deref() {
        Some([1 | 2, 1 | 2, 2 | 4]) => true,
        Some([4, 1 | 2, 1 | 2]) => true,
        _ => false,
    })
}

fn is_ssn(run: &str) -> bool {
    matches!(groups(run, '-').as_deref(), Some([3, 2, 4])) || matches!(groups(run, ' ').as_deref(), Some([3, 2, 4]))
}

fn is_phone(run: &str) -> bool {
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    (digits == 10 || (digits == 11 && run.trim_start_matches(['+', '(']).starts_with('1')))
        && (run.contains(['-', '.', ' ', '(']) || digits == 10)
}

/// What in `note` looks like PHI, in words for the sender (each kind once).
pub fn findings(note: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |what: String| {
        if !found.contains(&what) {
            found.push(what);
        }
    };
    let lower = note.to_lowercase();
    for run in number_runs(note) {
        let digits = run.bytes().filter(u8::is_ascii_digit).count();
        if is_date(&run) {
            add("a date (such as a date of birth)".to_owned());
        } else if is_ssn(&run) || (digits == 9 && run.bytes().all(|b| b.is_ascii_digit())) {
            add("a Social Security number".to_owned());
        } else if is_phone(&run) {
            add("a phone number".to_owned());
        } else if digits >= 5 {
            add("a record or chart number".to_owned());
        }
    }
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if has("dob") || lower.contains("date of birth") || lower.contains("born on") {
        add("a date of birth".to_owned());
    }
    if has("mrn") || has("ssn") || lower.contains("chart #") || lower.contains("record #") {
        add("a record or chart number".to_owned());
    }
    for word in self::words() {
        let hit = if word.contains(' ') { lower.contains(word) } else { has(word) };
        if hit {
            add(format!("the word “{word}”"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::findings;

    #[test]
    fn plain_notes_pass() {
        assert!(findings("").is_empty());
        assert!(findings("Your results are ready. Please sign in to read them.").is_empty());
        assert!(findings("See you on Tuesday at 3 pm, room 12").is_empty());
    }

    #[test]
    fn each_kind_is_named() {
        assert_eq!(findings("DOB 03/14/1985"), vec!["a date (such as a date of birth)", "a date of birth"]);
        assert_eq!(findings("born 1985-03-14"), vec!["a date (such as a date of birth)"]);
        assert_eq!(findings("SSN 123-45-6789"), vec!["a Social Security number", "a record or chart number"]);
        assert_eq!(findings("call me at (555) 010-0199"), vec!["a phone number"]);
        assert_eq!(findings("call 555.010.0199"), vec!["a phone number"]);
        assert_eq!(findings("chart 4471902"), vec!["a record or chart number"]);
        assert_eq!(findings("MRN: A-77"), vec!["a record or chart number"]);
        assert_eq!(findings("About your Diabetes"), vec!["the word “diabetes”"]);
    }
}
