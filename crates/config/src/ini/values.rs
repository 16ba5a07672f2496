//! Values as both dialects' originals read them.

/// A boolean as supervisord's `datatypes.boolean` and Circus's
/// `util.to_bool` take it: `yes`/`true`/`on`/`1` and `no`/`false`/`off`/`0`,
/// in any case. `None` for anything else.
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The error for a value [`boolean`] refuses.
pub(crate) fn not_a_boolean(text: &str) -> String {
    format!(
        "'{}' is not a boolean (true/false, yes/no, on/off, 1/0)",
        text.trim()
    )
}

/// A mode or umask: octal digits, at most 0o7777.
pub(crate) fn octal(text: &str) -> Option<u32> {
    crate::units::parse_octal(text, 0o7777).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_the_originals_take_them() {
        for yes in ["yes", "TRUE", "On", "1", " true "] {
            assert_eq!(boolean(yes), Some(true), "{yes}");
        }
        for no in ["no", "False", "OFF", "0"] {
            assert_eq!(boolean(no), Some(false), "{no}");
        }
        // Circus's to_bool takes no y/n either.
        for neither in ["y", "n", "", "2", "enabled"] {
            assert_eq!(boolean(neither), None, "{neither}");
        }
        assert_eq!(octal("022"), Some(0o22));
        assert_eq!(octal("0o777"), Some(0o777));
        assert_eq!(octal("8"), None);
        assert_eq!(octal("17777"), None);
    }
}
