//! Which configuration file `serve` and every admin command read: `--config FILE`,
//! else `SEALPOST_CONFIG`, else `./sealpost.toml`, else
//! `/etc/sealpost/sealpost.toml`, else the embedded defaults. A file named by the
//! flag or the variable must exist; the two usual places are only looked at.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the system-wide configuration lives (the Debian package installs it).
pub const SYSTEM_FILE: &str = "/etc/sealpost/sealpost.toml";
/// The file looked for in the working folder.
pub const LOCAL_FILE: &str = "sealpost.toml";

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--config FILE`.
    Flag(PathBuf),
    /// `SEALPOST_CONFIG=FILE`.
    Variable(PathBuf),
    /// `./sealpost.toml` in the working folder.
    WorkingFolder(PathBuf),
    /// `/etc/sealpost/sealpost.toml`.
    System(PathBuf),
    /// No file: the embedded defaults (and the environment).
    Embedded,
}

impl Source {
    /// Finds the file: `flag`, else `variable` (an empty one counts as unset),
    /// else `local` if it exists, else `system` if it exists.
    #[must_use]
    pub fn discover(flag: Option<PathBuf>, variable: Option<OsString>, local: &Path, system: &Path) -> Self {
        if let Some(path) = flag {
            return Self::Flag(path);
        }
        if let Some(path) = variable.filter(|v| !v.is_empty()) {
            return Self::Variable(PathBuf::from(path));
        }
        if local.exists() {
            return Self::WorkingFolder(local.to_owned());
        }
        if system.exists() {
            return Self::System(system.to_owned());
        }
        Self::Embedded
    }

    /// The usual lookup for this process: `--config`, `SEALPOST_CONFIG`,
    /// `./sealpost.toml`, `/etc/sealpost/sealpost.toml`.
    #[must_use]
    pub fn find(flag: Option<PathBuf>) -> Self {
        Self::discover(
            flag,
            std::env::var_os("SEALPOST_CONFIG"),
            Path::new(LOCAL_FILE),
            Path::new(SYSTEM_FILE),
        )
    }

    /// The file to read, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(path) | Self::Variable(path) | Self::WorkingFolder(path) | Self::System(path) => Some(path),
            Self::Embedded => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(path) => write!(f, "{} (from --config)", path.display()),
            Self::Variable(path) => write!(f, "{} (from SEALPOST_CONFIG)", path.display()),
            Self::WorkingFolder(path) => write!(f, "{} (found in the working folder)", path.display()),
            Self::System(path) => write!(f, "{} (the system-wide file)", path.display()),
            Self::Embedded => write!(
                f,
                "embedded defaults (no --config, no SEALPOST_CONFIG, no ./{LOCAL_FILE}, no {SYSTEM_FILE})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_variable_then_working_folder_then_system_then_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("local.toml");
        let system = dir.path().join("system.toml");
        let flag = Some(PathBuf::from("/flag.toml"));
        let var = Some(OsString::from("/var.toml"));
        assert_eq!(
            Source::discover(flag.clone(), var.clone(), &local, &system),
            Source::Flag("/flag.toml".into())
        );
        assert_eq!(
            Source::discover(None, var, &local, &system),
            Source::Variable("/var.toml".into())
        );
        assert_eq!(
            Source::discover(None, Some(OsString::new()), &local, &system),
            Source::Embedded,
            "an empty SEALPOST_CONFIG is unset, and neither file exists"
        );
        std::fs::write(&system, "").unwrap();
        assert_eq!(
            Source::discover(None, None, &local, &system),
            Source::System(system.clone())
        );
        std::fs::write(&local, "").unwrap();
        assert_eq!(
            Source::discover(None, None, &local, &system),
            Source::WorkingFolder(local.clone())
        );
        assert!(Source::Embedded.to_string().contains("/etc/sealpost/sealpost.toml"));
        assert_eq!(Source::Embedded.path(), None);
    }
}
