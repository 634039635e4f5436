//! A configuration problem and the list of them: where (file, line, column, path in the config)
//! and what. Loading, validation and the node's preparation all report in this form.

use std::fmt;
use std::path::PathBuf;

/// A configuration problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, if the config came from one.
    pub file: Option<PathBuf>,
    /// 1-based line and column in the file, where known.
    pub position: Option<(usize, usize)>,
    /// Where in the config (`workers[0].realms[1].name`); empty for syntax errors.
    pub path: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// A problem at `path`, without file or position yet.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: None,
            position: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, column)) = self.position {
                write!(f, ":{line}:{column}")?;
            }
            write!(f, ": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
