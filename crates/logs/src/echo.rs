//! `echo = true`: each line a process writes is copied to the daemon's
//! stdout as `web:1 | line` (`web:1 ! line` for stderr), the path by which
//! a container's processes reach its log.

/// Longest partial line held back waiting for its newline; a longer one is
/// written as it is, so memory stays bounded.
const MAX_PENDING: usize = 64 * 1024;

/// Frames one stream's output into prefixed lines.
#[derive(Debug)]
pub struct Echo {
    prefix: Vec<u8>,
    pending: Vec<u8>,
}

impl Echo {
    /// `name` is the process (`web:1`); `stderr` selects the `!` marker;
    /// `colour` wraps the name in an ANSI colour chosen from the name.
    pub fn new(name: &str, stderr: bool, colour: bool) -> Self {
        let marker = if stderr { '!' } else { '|' };
        let prefix = if colour {
            let hue = 31
                + name
                    .bytes()
                    .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                    % 6;
            format!("\x1b[{hue}m{name}\x1b[0m {marker} ")
        } else {
            format!("{name} {marker} ")
        };
        Self {
            prefix: prefix.into_bytes(),
            pending: Vec::new(),
        }
    }

    /// Frames `data`: the complete lines, prefixed (empty while a line
    /// waits for its newline).
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        let mut framed = Vec::with_capacity(data.len() + 64);
        for piece in data.split_inclusive(|&b| b == b'\n') {
            if piece.ends_with(b"\n") {
                framed.extend_from_slice(&self.prefix);
                framed.append(&mut self.pending);
                framed.extend_from_slice(piece);
            } else {
                self.pending.extend_from_slice(piece);
                if self.pending.len() >= MAX_PENDING {
                    framed.extend_from_slice(&self.prefix);
                    framed.append(&mut self.pending);
                    framed.push(b'\n');
                }
            }
        }
        framed
    }

    /// Frames a last line that never got its newline (empty if none).
    pub fn finish(&mut self) -> Vec<u8> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let mut framed = self.prefix.clone();
        framed.append(&mut self.pending);
        framed.push(b'\n');
        framed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_across_chunks() {
        let mut echo = Echo::new("web:1", false, false);
        let mut out = echo.feed(b"one\ntw");
        out.extend(echo.feed(b"o\nthree"));
        out.extend(echo.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "web:1 | one\nweb:1 | two\nweb:1 | three\n"
        );
        let mut err = Echo::new("web:1", true, false);
        assert_eq!(err.feed(b"oops\n"), b"web:1 ! oops\n");
    }

    #[test]
    fn colour_only_wraps_the_name() {
        let mut echo = Echo::new("web:1", false, true);
        let text = String::from_utf8(echo.feed(b"x\n")).unwrap();
        assert!(
            text.starts_with("\x1b[3") && text.ends_with("web:1\x1b[0m | x\n"),
            "{text:?}"
        );
    }
}
