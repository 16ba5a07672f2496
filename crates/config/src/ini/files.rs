//! Reading INI files and the files they include.

use std::path::{Path, PathBuf};

use ringmaster_ini::{Dialect, Document};

use super::at;
use crate::error::ConfigError;

/// One INI file, parsed.
#[derive(Debug)]
pub(crate) struct IniFile {
    /// The file (absolute).
    pub path: PathBuf,
    /// Its sections.
    pub doc: Document,
}

impl IniFile {
    /// Reads and parses `path`; every bad line is an error.
    pub(crate) fn read(path: &Path, dialect: Dialect) -> Result<Self, Vec<ConfigError>> {
        let bytes = std::fs::read(path).map_err(|source| {
            vec![ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }]
        })?;
        let text = String::from_utf8(bytes).map_err(|err| {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            // Lines before the bad byte, plus its own.
            let line = valid.split(|&b| b == b'\n').count();
            vec![ConfigError::Syntax {
                location: at(path, line),
                message: "not valid UTF-8".into(),
            }]
        })?;
        let doc = ringmaster_ini::parse(&text, dialect).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| match e.key {
                    Some(key) => ConfigError::Invalid {
                        location: at(path, e.line),
                        key,
                        message: e.message,
                    },
                    None => ConfigError::Syntax {
                        location: at(path, e.line),
                        message: e.message,
                    },
                })
                .collect::<Vec<_>>()
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            doc,
        })
    }
}

/// The files `pattern` names, relative to `base`, sorted; a pattern with no
/// glob characters must name an existing file.
pub(crate) fn expand_include(pattern: &str, base: &Path) -> Result<Vec<PathBuf>, String> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let text = full.to_string_lossy().into_owned();
    let is_glob = pattern.contains(['*', '?', '[']);
    if !is_glob {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!("included file {text} does not exist"))
        };
    }
    let paths = glob::glob(&text).map_err(|e| format!("bad pattern '{pattern}': {e}"))?;
    let mut found: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    Ok(found)
}
