//! `echo = true`: each line a process writes is copied to the daemon's
//! stdout as `web:1 | line` (`web:1 ! line` for stderr), the path by which
//! a container's processes reach its log.

use std::io::Write;

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

    /// Frames `data` and writes the complete lines to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut impl Write) -> std::io::Result<()> {
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
        if framed.is_empty() {
            return Ok(());
        }
        out.write_all(&framed)?;
        out.flush()
    }

    /// Writes a last line that never got its newline.
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut framed = self.prefix.clone();
        framed.append(&mut self.pending);
        framed.push(b'\n');
        out.write_all(&framed)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_lines_across_chunks() {
        let mut echo = Echo::new("web:1", false, false);
        let mut out = Vec::new();
        echo.feed(b"one\ntw", &mut out).unwrap();
        echo.feed(b"o\nthree", &mut out).unwrap();
        echo.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "web:1 | one\nweb:1 | two\nweb:1 | three\n"
        );
        let mut err = Echo::new("web:1", true, false);
        let mut out = Vec::new();
        err.feed(b"oops\n", &mut out).unwrap();
        assert_eq!(out, b"web:1 ! oops\n");
    }

    #[test]
    fn colour_only_wraps_the_name() {
        let mut echo = Echo::new("web:1", false, true);
        let mut out = Vec::new();
        echo.feed(b"x\n", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("\x1b[3") && text.ends_with("web:1\x1b[0m | x\n"),
            "{text:?}"
        );
    }
}
