//! Durations and octal modes as configuration values spell them.

use std::time::Duration;

/// Parses `"500ms"`, `"10s"`, `"2m"`, `"1h 30m"` or `"0"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed).map_err(|err| {
        format!("invalid duration '{text}': {err} (examples: \"500ms\", \"10s\", \"2m\")")
    })
}

/// Parses an octal mode or umask written as a string (`"022"`, `"0o660"`).
pub(crate) fn parse_octal(text: &str, max: u32) -> Result<u32, String> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0o").unwrap_or(trimmed);
    let value = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("invalid octal value '{text}' (example: \"022\")"))?;
    if value > max {
        return Err(format!("'{text}' is larger than {max:o} (octal)"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn octal() {
        assert_eq!(parse_octal("022", 0o777).unwrap(), 0o22);
        assert_eq!(parse_octal("0o660", 0o7777).unwrap(), 0o660);
        assert!(parse_octal("9", 0o777).is_err());
        assert!(parse_octal("1777", 0o777).is_err());
    }
}
