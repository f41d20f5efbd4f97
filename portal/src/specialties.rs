//! Dental and medical specialties with their typical procedures, from
//! `data/specialties.json`, for the doctor's registration form.

use std::sync::LazyLock;

use serde::Deserialize;

/// One specialty and the procedures doctors in it typically perform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Specialty {
    pub name: String,
    pub procedures: Vec<String>,
}

/// The specialties, grouped by field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Specialties {
    pub dental: Vec<Specialty>,
    pub medical: Vec<Specialty>,
}

static DATA: LazyLock<Specialties> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../data/specialties.json")).expect("data/specialties.json is valid (tested)")
});

/// The built-in list.
pub fn all() -> &'static Specialties {
    &DATA
}

impl Specialties {
    /// `(field label, specialties)` in display order.
    pub fn groups(&self) -> [(&'static str, &[Specialty]); 2] {
        [("Dental", &self.dental), ("Medical", &self.medical)]
    }

    pub fn find(&self, name: &str) -> Option<&Specialty> {
        self.dental.iter().chain(&self.medical).find(|s| s.name == name)
    }

    /// Is `procedure` on any specialty's list?
    pub fn knows_procedure(&self, procedure: &str) -> bool {
        self.dental
            .iter()
            .chain(&self.medical)
            .any(|s| s.procedures.iter().any(|p| p == procedure))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_parses_and_every_specialty_has_procedures() {
        let data = all();
        assert!(data.dental.len() >= 10, "dental specialties");
        assert!(data.medical.len() >= 12, "medical specialties");
        let mut names = std::collections::HashSet::new();
        for (_, group) in data.groups() {
            for specialty in group {
                assert!(names.insert(specialty.name.as_str()), "duplicate {}", specialty.name);
                assert!(
                    (4..=8).contains(&specialty.procedures.len()),
                    "{} has {} procedures",
                    specialty.name,
                    specialty.procedures.len()
                );
                let unique: std::collections::HashSet<_> = specialty.procedures.iter().collect();
                assert_eq!(
                    unique.len(),
                    specialty.procedures.len(),
                    "{} repeats a procedure",
                    specialty.name
                );
                assert!(data.find(&specialty.name).is_some());
            }
        }
        assert!(data.knows_procedure("Root canal treatment"));
        assert!(!data.knows_procedure("Brain transplant"));
    }
}
