//! A readiness check on a stream's output (`ready = { log = "regex" }`):
//! each complete line is matched, in the reader thread, until one matches.

/// Longest partial line kept while waiting for its end: a longer line is
/// matched on its first part only.
const MAX_LINE: usize = 64 * 1024;

/// Matches a stream's lines against a pattern, once.
pub struct LineWatch {
    pattern: regex::bytes::Regex,
    /// Called on the first matching line.
    on_match: Option<Box<dyn FnOnce() + Send>>,
    /// The start of a line whose end has not been read yet.
    partial: Vec<u8>,
}

impl std::fmt::Debug for LineWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineWatch")
            .field("pattern", &self.pattern.as_str())
            .finish_non_exhaustive()
    }
}

impl LineWatch {
    /// Calls `on_match` once, for the first line matching `pattern`.
    pub fn new(pattern: regex::bytes::Regex, on_match: impl FnOnce() + Send + 'static) -> Self {
        Self {
            pattern,
            on_match: Some(Box::new(on_match)),
            partial: Vec::new(),
        }
    }

    /// Looks at the next bytes of the stream; true once a line matched
    /// (the watch is then done).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let matched = if self.partial.is_empty() {
                self.pattern.is_match(&rest[..end])
            } else {
                self.keep(&rest[..end]);
                let line = std::mem::take(&mut self.partial);
                self.pattern.is_match(&line)
            };
            if matched {
                if let Some(call) = self.on_match.take() {
                    call();
                }
                return true;
            }
            rest = &rest[end + 1..];
        }
        self.keep(rest);
        false
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn watch(pattern: &str) -> (LineWatch, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&calls);
        let regex = regex::bytes::Regex::new(pattern).unwrap();
        (
            LineWatch::new(regex, move || {
                counted.fetch_add(1, Ordering::Relaxed);
            }),
            calls,
        )
    }

    #[test]
    fn a_line_split_across_reads_is_matched_whole_and_only_once() {
        let (mut w, calls) = watch(r"^Listening at: http://\S+ \(\d+\)$");
        assert!(!w.feed(b"[INFO] Starting gunicorn\nListening at: ht"));
        assert!(!w.feed(b"tp://127.0.0.1:8000"));
        assert!(w.feed(b" (42)\nmore\n"));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn no_end_of_line_no_match() {
        let (mut w, calls) = watch("ready");
        assert!(!w.feed(b"not yet\nready but not ended"));
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        assert!(w.feed(b"\n"));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
