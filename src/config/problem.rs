//! Where configuration is wrong: a [`Problem`] names the file, line and column; a [`Report`]
//! collects them for one file, placing each by its YAML path. Every check, here and in
//! `check/`, reports through these.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::locate::{Locator, Step};
use crate::schema::ColumnKind;

/// One thing wrong with the configuration, where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl From<ConfigError> for Problem {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Parse {
                path,
                line,
                column,
                message,
            } => Problem {
                file: path,
                line,
                column,
                message,
            },
            ConfigError::Read { path, source } => Problem {
                file: path,
                line: 1,
                column: 1,
                message: format!("cannot read: {source}"),
            },
            ConfigError::Invalid { path, message } => Problem {
                file: path,
                line: 1,
                column: 1,
                message,
            },
        }
    }
}

/// table → column → type.
pub type KnownTables = BTreeMap<String, BTreeMap<String, ColumnKind>>;

/// Collects problems for one file.
pub struct Report<'a> {
    pub file: &'a Path,
    pub locator: &'a Locator,
    pub problems: Vec<Problem>,
}

impl Report<'_> {
    pub fn at(&mut self, path: &[Step], message: impl Into<String>) {
        let (line, column) = self.locator.locate(path);
        self.at_position(line, column, message);
    }

    pub fn at_position(&mut self, line: usize, column: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }
}
