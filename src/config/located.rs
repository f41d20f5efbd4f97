//! Where each configuration key was set — a line of the file, or an environment
//! variable — so that every problem `sealpost config check` (and a refused start)
//! reports says where to fix it: `sealpost.toml:12: smtp.relay_listen "nowhere" …`
//! or `… (set by SEALPOST_SMTP_RELAY_LISTEN)`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// Where one key's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A line (from 1) of the file.
    Line(usize),
    /// An environment variable, by name.
    Env(String),
}

/// The origin of every key set in the file or the environment, by its dotted
/// name (`smtp.relay_listen`, `public_url`).
#[derive(Debug, Default)]
pub struct Origins {
    file: Option<PathBuf>,
    keys: HashMap<String, Origin>,
}

impl Origins {
    /// Parses `text` (the file at `path`) for the line of each key. Syntax errors
    /// come back all at once, each with its line.
    pub fn of_file(path: &Path, text: &str) -> Result<Self, Vec<String>> {
        let mut origins = Self {
            file: Some(path.to_owned()),
            keys: HashMap::new(),
        };
        let (table, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            let mut lines: Vec<(usize, &str)> = errors
                .iter()
                .map(|error| {
                    let line = error.span().map_or(1, |span| line_of(text, span.start));
                    (line, error.message().trim())
                })
                .collect();
            lines.sort_by_key(|(line, _)| *line);
            return Err(lines
                .into_iter()
                .map(|(line, message)| format!("{}:{line}: {message}", path.display()))
                .collect());
        }
        origins.walk(text, "", table.get_ref());
        Ok(origins)
    }

    fn walk(&mut self, text: &str, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table {
            let name = format!("{prefix}{}", key.get_ref());
            self.keys
                .insert(name.clone(), Origin::Line(line_of(text, key.span().start)));
            // Sections hold keys; deeper tables (e.g. outbound.practice_reply_to)
            // are values of one key.
            if prefix.is_empty()
                && let DeValue::Table(inner) = value.get_ref()
            {
                self.walk(text, &format!("{name}."), inner);
            }
        }
    }

    /// Records that `key` (dotted) was set by the environment variable `var`;
    /// it overrides the file's line.
    pub fn set_by_env(&mut self, key: String, var: &str) {
        self.keys.insert(key, Origin::Env(var.to_owned()));
    }

    /// `problem`, prefixed with the file and line of the first key it names that
    /// was set, or followed by the environment variable that set it. A problem
    /// about a key left at its default names the file alone (or nothing).
    pub fn place(&self, problem: &str) -> String {
        let origin = keys_named(problem).find_map(|key| self.keys.get(key));
        match (origin, &self.file) {
            (Some(Origin::Env(var)), _) => format!("{problem} (set by {var})"),
            (Some(Origin::Line(line)), Some(file)) => format!("{}:{line}: {problem}", file.display()),
            (_, Some(file)) if !problem.starts_with(&file.display().to_string()) => {
                format!("{}: {problem}", file.display())
            }
            _ => problem.to_owned(),
        }
    }
}

/// The line (from 1) of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// The words of a problem that look like keys (`smtp.relay_listen`,
/// `public_url`), in order: problems name their key first.
fn keys_named(problem: &str) -> impl Iterator<Item = &str> {
    problem
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map(|word| word.trim_matches('.'))
        .filter(|word| !word.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_get_their_lines_and_the_environment_wins() {
        let text = "public_url = \"x\"\n\n[smtp]\n# a comment\nrelay_listen = \"nowhere\"\n\
                    [outbound]\npractice_reply_to = { \"a.example\" = \"b@a.example\" }\n";
        let mut origins = Origins::of_file(Path::new("/etc/s.toml"), text).unwrap();
        assert_eq!(
            origins.place("smtp.relay_listen \"nowhere\" is not an address"),
            "/etc/s.toml:5: smtp.relay_listen \"nowhere\" is not an address"
        );
        assert_eq!(
            origins.place("public_url \"x\" must start with https://"),
            "/etc/s.toml:1: public_url \"x\" must start with https://"
        );
        assert_eq!(
            origins.place("outbound.practice_reply_to: bad"),
            "/etc/s.toml:7: outbound.practice_reply_to: bad"
        );
        assert_eq!(
            origins.place("dkim.domain must be set"),
            "/etc/s.toml: dkim.domain must be set",
            "a default value: the file, no line"
        );
        origins.set_by_env("smtp.relay_listen".into(), "SEALPOST_SMTP_RELAY_LISTEN");
        assert_eq!(
            origins.place("smtp.relay_listen \"nowhere\" is not an address"),
            "smtp.relay_listen \"nowhere\" is not an address (set by SEALPOST_SMTP_RELAY_LISTEN)"
        );
    }

    #[test]
    fn dotted_keys_and_every_syntax_error_have_lines() {
        let origins = Origins::of_file(Path::new("s.toml"), "a = 1\nsmtp.hostname = \"h\"\n").unwrap();
        assert_eq!(origins.place("smtp.hostname bad"), "s.toml:2: smtp.hostname bad");
        let errors = Origins::of_file(Path::new("s.toml"), "a = 1\nb = \nc = 3\nd = [\n").unwrap_err();
        assert!(errors.len() >= 2, "{errors:?}");
        assert!(errors[0].starts_with("s.toml:2: "), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("s.toml:4: ")), "{errors:?}");
    }

    #[test]
    fn without_a_file_problems_name_the_variable_or_nothing() {
        let mut origins = Origins::default();
        assert_eq!(origins.place("smtp.hostname bad"), "smtp.hostname bad");
        origins.set_by_env("public_url".into(), "SEALPOST_PUBLIC_URL");
        assert_eq!(
            origins.place("public_url x"),
            "public_url x (set by SEALPOST_PUBLIC_URL)"
        );
    }
}
