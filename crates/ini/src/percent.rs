//! Python's `template % mapping` formatting, as supervisord applies it to
//! its values (`%(program_name)s`, `%(process_num)02d`, `%%`).
//!
//! Supported: `%%`, and `%(name)` followed by flags (`#0- +`), a width, a
//! precision and one of the conversions `s d i u x X o`. Anything Python
//! would refuse is an error here too; a `%` with no `(name)` (which Python
//! would apply to the whole mapping, never what was meant) is an error.

use std::fmt::Write as _;

/// A value a name expands to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text (`here`, `program_name`, `ENV_X`, ...).
    Str(String),
    /// A number (`process_num`, `numprocs`).
    Int(i64),
}

/// Why a template cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PercentError {
    /// `%(name)` names nothing known.
    #[error("%({0}) cannot be expanded: no such name")]
    Unknown(String),
    /// `%(` without `)`, or a `%` at the very end.
    #[error("incomplete % format in {0:?} (write %% for a literal %)")]
    Incomplete(String),
    /// A `%` not followed by `(name)` or `%`.
    #[error("a % must be followed by (name) and a conversion, as in %(name)s, or doubled: {0:?}")]
    Unnamed(String),
    /// A conversion character we (or Python) do not support.
    #[error("unsupported conversion %{conversion} after %({name}) (use s, d, i, x, X or o)")]
    Conversion {
        /// The name before it.
        name: String,
        /// The character.
        conversion: char,
    },
    /// `%d` and friends applied to text.
    #[error("%({0}) is text, not a number: use %({0})s")]
    NotANumber(String),
}

/// One `%(name)...c` directive, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The name between the parentheses.
    pub name: String,
    /// `-`: pad on the right.
    pub left: bool,
    /// `0`: pad numbers with zeros.
    pub zero: bool,
    /// `+`: always a sign.
    pub plus: bool,
    /// ` `: a space before positive numbers.
    pub space: bool,
    /// `#`: `0x` / `0o` prefixes.
    pub alternate: bool,
    /// Minimum width.
    pub width: usize,
    /// Precision (truncates text, minimum digits for numbers).
    pub precision: Option<usize>,
    /// The conversion character.
    pub conversion: char,
}

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is (`%%` already turned into `%`).
    Literal(String),
    /// A `%(name)` directive.
    Directive(Directive),
}

/// Splits `template` into literal text and directives.
pub fn parse(template: &str) -> Result<Vec<Piece>, PercentError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        match chars.next() {
            Some((_, '%')) => {
                literal.push('%');
                continue;
            }
            Some((_, '(')) => {}
            Some(_) => return Err(PercentError::Unnamed(template.to_owned())),
            None => return Err(PercentError::Incomplete(template.to_owned())),
        }
        // Python allows nested parentheses in the key; count them.
        let mut depth = 1;
        let mut name = String::new();
        for (_, c) in chars.by_ref() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            name.push(c);
        }
        if depth != 0 {
            return Err(PercentError::Incomplete(template[start..].to_owned()));
        }
        let mut d = Directive {
            name,
            left: false,
            zero: false,
            plus: false,
            space: false,
            alternate: false,
            width: 0,
            precision: None,
            conversion: 's',
        };
        while let Some(&(_, flag)) = chars.peek() {
            match flag {
                '-' => d.left = true,
                '0' => d.zero = true,
                '+' => d.plus = true,
                ' ' => d.space = true,
                '#' => d.alternate = true,
                _ => break,
            }
            chars.next();
        }
        d.width = digits(&mut chars);
        if chars.peek().is_some_and(|&(_, c)| c == '.') {
            chars.next();
            d.precision = Some(digits(&mut chars));
        }
        // Python accepts and ignores a length modifier.
        while chars
            .peek()
            .is_some_and(|&(_, c)| matches!(c, 'h' | 'l' | 'L'))
        {
            chars.next();
        }
        let Some((_, conversion)) = chars.next() else {
            return Err(PercentError::Incomplete(template[start..].to_owned()));
        };
        if !matches!(conversion, 's' | 'd' | 'i' | 'u' | 'x' | 'X' | 'o') {
            return Err(PercentError::Conversion {
                name: d.name,
                conversion,
            });
        }
        d.conversion = conversion;
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Directive(d));
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn digits(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> usize {
    let mut n: usize = 0;
    while let Some(&(_, c)) = chars.peek() {
        let Some(d) = c.to_digit(10) else { break };
        n = n.saturating_mul(10).saturating_add(d as usize).min(4096);
        chars.next();
    }
    n
}

/// Formats one directive with its value, as Python would.
pub fn format(d: &Directive, value: &Value) -> Result<String, PercentError> {
    let body = match (d.conversion, value) {
        ('s', Value::Str(s)) => match d.precision {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('s', Value::Int(n)) => {
            let text = n.to_string();
            match d.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            }
        }
        (_, Value::Str(_)) => return Err(PercentError::NotANumber(d.name.clone())),
        (conversion, Value::Int(n)) => return Ok(number(d, conversion, *n)),
    };
    Ok(pad(d, body))
}

fn number(d: &Directive, conversion: char, n: i64) -> String {
    let magnitude = n.unsigned_abs();
    let mut digits = match conversion {
        'x' => format!("{magnitude:x}"),
        'X' => format!("{magnitude:X}"),
        'o' => format!("{magnitude:o}"),
        _ => magnitude.to_string(),
    };
    if let Some(p) = d.precision
        && digits.len() < p
    {
        digits = "0".repeat(p - digits.len()) + &digits;
    }
    let mut prefix = String::new();
    if n < 0 {
        prefix.push('-');
    } else if d.plus {
        prefix.push('+');
    } else if d.space {
        prefix.push(' ');
    }
    if d.alternate {
        match conversion {
            'x' => prefix.push_str("0x"),
            'X' => prefix.push_str("0X"),
            'o' => prefix.push_str("0o"),
            _ => {}
        }
    }
    if d.zero && !d.left && prefix.len() + digits.len() < d.width {
        let zeros = d.width - prefix.len() - digits.len();
        return prefix + &"0".repeat(zeros) + &digits;
    }
    pad(d, prefix + &digits)
}

fn pad(d: &Directive, body: String) -> String {
    let len = body.chars().count();
    if len >= d.width {
        return body;
    }
    let fill = " ".repeat(d.width - len);
    if d.left { body + &fill } else { fill + &body }
}

/// Expands `template` with `lookup`, as `template % mapping` would.
pub fn expand(
    template: &str,
    lookup: impl Fn(&str) -> Option<Value>,
) -> Result<String, PercentError> {
    let mut out = String::new();
    for piece in parse(template)? {
        match piece {
            Piece::Literal(text) => out.push_str(&text),
            Piece::Directive(d) => {
                let value = lookup(&d.name).ok_or_else(|| PercentError::Unknown(d.name.clone()))?;
                let _ = write!(out, "{}", format(&d, &value)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(name: &str) -> Option<Value> {
        match name {
            "program_name" => Some(Value::Str("web".into())),
            "process_num" => Some(Value::Int(7)),
            "neg" => Some(Value::Int(-42)),
            _ => None,
        }
    }

    fn x(template: &str) -> Result<String, PercentError> {
        expand(template, names)
    }

    /// Expected values are what CPython 3.11 prints for the same template.
    #[test]
    fn matches_python() {
        assert_eq!(x("%(program_name)s_%(process_num)02d").unwrap(), "web_07");
        assert_eq!(x("%%h:%%p").unwrap(), "%h:%p");
        assert_eq!(x("[%(program_name)5s]").unwrap(), "[  web]");
        assert_eq!(x("[%(program_name)-5s]").unwrap(), "[web  ]");
        assert_eq!(x("[%(program_name).2s]").unwrap(), "[we]");
        assert_eq!(x("%(process_num)s").unwrap(), "7");
        assert_eq!(
            x("%(process_num)#x %(process_num)o %(process_num)X").unwrap(),
            "0x7 7 7"
        );
        assert_eq!(x("[%(neg)05d]").unwrap(), "[-0042]");
        assert_eq!(
            x("[%(process_num)+d] [%(process_num) d]").unwrap(),
            "[+7] [ 7]"
        );
        assert_eq!(x("[%(process_num).3d]").unwrap(), "[007]");
        assert_eq!(x("[%(process_num)-4d]").unwrap(), "[7   ]");
        assert_eq!(x("%(process_num)ld").unwrap(), "7");
    }

    #[test]
    fn refuses_what_python_refuses() {
        assert_eq!(x("%(nope)s"), Err(PercentError::Unknown("nope".into())));
        assert!(matches!(
            x("%(program_name"),
            Err(PercentError::Incomplete(_))
        ));
        assert!(matches!(x("50%"), Err(PercentError::Incomplete(_))));
        assert!(matches!(
            x("%(program_name)"),
            Err(PercentError::Incomplete(_))
        ));
        assert!(matches!(x("%s"), Err(PercentError::Unnamed(_))));
        assert_eq!(
            x("%(program_name)d"),
            Err(PercentError::NotANumber("program_name".into()))
        );
        assert!(matches!(
            x("%(program_name)q"),
            Err(PercentError::Conversion {
                conversion: 'q',
                ..
            })
        ));
    }
}
