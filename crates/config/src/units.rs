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

/// Parses a size: `"50MB"`, `"512KiB"`, `"1GB"`, `"100B"` (K, M and G are
/// powers of 1024, as Supervisor reads them) or a plain number of bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size '{text}' (examples: \"50MB\", \"512KB\", \"1GB\")"))?;
    let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size unit in '{text}' (use B, KB, MB or GB)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size '{text}' is too large"))
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
    fn sizes() {
        assert_eq!(parse_size("50MB").unwrap(), 50 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("huge").is_err());
        assert!(parse_size("10XB").is_err());
    }

    #[test]
    fn octal() {
        assert_eq!(parse_octal("022", 0o777).unwrap(), 0o22);
        assert_eq!(parse_octal("0o660", 0o7777).unwrap(), 0o660);
        assert!(parse_octal("9", 0o777).is_err());
        assert!(parse_octal("1777", 0o777).is_err());
    }
}
