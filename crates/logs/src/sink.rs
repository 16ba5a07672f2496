//! A log file: appended to, optionally timestamped per line, rotated by
//! size, reopened on request.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ringmaster_safefs::{Dir, SafeError};

use crate::LogError;
use crate::timestamp::rfc3339;

/// Mode of log files the daemon creates.
pub const LOG_FILE_MODE: u32 = 0o640;

/// How a log file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// The file.
    pub path: PathBuf,
    /// Rotate before the file would grow past this many bytes.
    pub max_size: Option<u64>,
    /// How many rotated files (`.1` .. `.N`) to keep; 0 truncates instead.
    pub backups: u32,
    /// Prefix each line with an RFC 3339 UTC timestamp.
    pub timestamps: bool,
    /// Put this before each line (after the timestamp): a hook's output
    /// marks its lines `[hook before_start] ` in its process's log.
    pub prefix: String,
}

impl SinkSpec {
    /// A plain appended file: no rotation, no timestamps.
    pub fn plain(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_size: None,
            backups: 0,
            timestamps: false,
            prefix: String::new(),
        }
    }
}

/// An open log file and what is needed to keep writing it correctly.
/// The file and its rotated backups are opened and renamed through the
/// descriptor of the directory they are in, reached by a checked walk
/// (see ringmaster-safefs): nothing planted there is followed.
#[derive(Debug)]
pub struct Sink {
    spec: SinkSpec,
    dir: Dir,
    name: OsString,
    file: File,
    /// Bytes in the current file (its size when opened, plus our writes).
    size: u64,
    /// The device the file is on.
    device: u64,
    /// Whether it is a regular file (not a FIFO or a terminal).
    regular: bool,
    /// Whether the next byte starts a line (for timestamps and prefixes).
    at_line_start: bool,
    /// Scratch buffer for timestamped output, reused across writes.
    scratch: Vec<u8>,
}

impl Sink {
    /// Opens (creating it and its directory if needed) a log file for
    /// appending, with mode [`LOG_FILE_MODE`].
    pub fn open(spec: SinkSpec) -> Result<Self, LogError> {
        let (dir, name, file) = open_append(&spec.path)?;
        let (size, device, regular) = facts(&file);
        Ok(Self {
            spec,
            dir,
            name,
            file,
            size,
            device,
            regular,
            at_line_start: true,
            scratch: Vec::new(),
        })
    }

    /// The device the file is on (`st_dev`).
    pub fn device(&self) -> u64 {
        self.device
    }

    /// Whether the file is a regular file (not a FIFO or a terminal).
    pub fn is_regular(&self) -> bool {
        self.regular
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    /// Closes and reopens the file by name (after an external rename, the
    /// next byte goes to a new file). Appending means that after an
    /// external truncation (copytruncate) writing resumes at offset 0.
    pub fn reopen(&mut self) -> Result<(), LogError> {
        // By name from the top: the directory itself may have moved.
        let (dir, name, file) = open_append(&self.spec.path)?;
        (self.dir, self.name, self.file) = (dir, name, file);
        (self.size, self.device, self.regular) = facts(&self.file);
        Ok(())
    }

    /// Empties the file through the descriptor being written (it is
    /// appended to, so the next write lands at offset 0).
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.size = 0;
        Ok(())
    }

    /// Writes `data`, timestamping and rotating as configured. On error the
    /// bytes not yet written are the caller's to count.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.spec.timestamps || !self.spec.prefix.is_empty() {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            let stamp = if self.spec.timestamps {
                rfc3339(SystemTime::now()) + " "
            } else {
                String::new()
            };
            for piece in data.split_inclusive(|&b| b == b'\n') {
                if self.at_line_start {
                    scratch.extend_from_slice(stamp.as_bytes());
                    scratch.extend_from_slice(self.spec.prefix.as_bytes());
                }
                scratch.extend_from_slice(piece);
                self.at_line_start = piece.ends_with(b"\n");
            }
            let result = self.write_rotating(&scratch);
            self.scratch = scratch;
            result
        } else {
            self.write_rotating(data)
        }
    }

    /// Writes, rotating first whenever the file would pass max_size; a
    /// rotation happens after a newline when one fits, so lines stay whole
    /// unless a single line is longer than max_size.
    fn write_rotating(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let Some(max) = self.spec.max_size.filter(|&m| m > 0) else {
            self.file.write_all(data)?;
            self.size += data.len() as u64;
            return Ok(());
        };
        while !data.is_empty() {
            if self.size >= max {
                self.rotate()?;
            }
            let room = (max - self.size) as usize;
            let take = if data.len() <= room {
                data.len()
            } else if let Some(newline) = data[..room].iter().rposition(|&b| b == b'\n') {
                newline + 1
            } else if self.size > 0 {
                // The next line does not fit: start a new file for it.
                self.rotate()?;
                continue;
            } else {
                room
            };
            self.file.write_all(&data[..take])?;
            self.size += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2` ... up to
    /// `backups`, renamed inside the file's directory; with no backups the
    /// file is truncated.
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.spec.backups == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let numbered = |n: u32| {
            let mut name = self.name.clone();
            name.push(format!(".{n}"));
            name
        };
        let io = |e: SafeError| std::io::Error::other(e.to_string());
        for n in (1..self.spec.backups).rev() {
            let from = numbered(n);
            if self.dir.stat(&from).map_err(io)?.is_some() {
                self.dir.rename(&from, &numbered(n + 1)).map_err(io)?;
            }
        }
        self.dir.rename(&self.name, &numbered(1)).map_err(io)?;
        self.file = self
            .dir
            .open_append(&self.name, LOG_FILE_MODE)
            .map_err(io)?;
        self.size = 0;
        Ok(())
    }
}

/// Opens the log file at `path` for appending, its directories created
/// if missing; returns its directory and name too, for rotation.
/// An open file's size, device and whether it is a regular file.
fn facts(file: &File) -> (u64, u64, bool) {
    file.metadata().map_or((0, 0, true), |m| {
        (m.len(), m.dev(), m.file_type().is_file())
    })
}

fn open_append(path: &Path) -> Result<(Dir, OsString, File), LogError> {
    let fail = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().map(OsStr::to_os_string).ok_or_else(|| {
        fail(SafeError::Io {
            path: path.to_path_buf(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })
    })?;
    let (dir, file) = ringmaster_safefs::open_append(path, LOG_FILE_MODE, true).map_err(fail)?;
    Ok((dir, name, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, max: Option<u64>, backups: u32) -> SinkSpec {
        SinkSpec {
            path: dir.join("out.log"),
            max_size: max,
            backups,
            timestamps: false,
            prefix: String::new(),
        }
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn rotation_keeps_every_byte_once_and_lines_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::open(spec(dir.path(), Some(30), 3)).unwrap();
        let mut all = String::new();
        for i in 0..12 {
            let line = format!("line {i:02} of the log\n"); // 19 bytes
            all.push_str(&line);
            sink.write(line.as_bytes()).unwrap();
        }
        // Each file holds one whole line (two would be 38 > 30); 3 backups.
        assert_eq!(read(dir.path(), "out.log"), "line 11 of the log\n");
        assert_eq!(read(dir.path(), "out.log.1"), "line 10 of the log\n");
        assert_eq!(read(dir.path(), "out.log.3"), "line 08 of the log\n");
        assert!(!dir.path().join("out.log.4").exists());
    }

    #[test]
    fn rotation_in_one_big_write_loses_and_doubles_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::open(spec(dir.path(), Some(1000), 50)).unwrap();
        let data: Vec<u8> = (0..200)
            .flat_map(|i: u32| format!("{i:05} abcdefghij\n").into_bytes())
            .collect();
        let data = String::from_utf8(data).unwrap();
        sink.write(data.as_bytes()).unwrap();
        let mut files: Vec<String> = (1..=50)
            .rev()
            .map(|n| read(dir.path(), &format!("out.log.{n}")))
            .collect();
        files.push(read(dir.path(), "out.log"));
        assert_eq!(files.concat(), data);
        for name in ["out.log", "out.log.1"] {
            let text = read(dir.path(), name);
            assert!(
                text.len() <= 1000 && text.ends_with('\n'),
                "{name}: {}",
                text.len()
            );
        }
    }

    #[test]
    fn a_line_longer_than_max_size_is_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::open(spec(dir.path(), Some(10), 5)).unwrap();
        sink.write(b"0123456789abcdefghij\n").unwrap();
        assert_eq!(read(dir.path(), "out.log.2"), "0123456789");
        assert_eq!(read(dir.path(), "out.log.1"), "abcdefghij");
        assert_eq!(read(dir.path(), "out.log"), "\n");
    }

    #[test]
    fn no_backups_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::open(spec(dir.path(), Some(10), 0)).unwrap();
        sink.write(b"aaaa\nbbbb\n").unwrap();
        sink.write(b"cccc\n").unwrap();
        assert_eq!(read(dir.path(), "out.log"), "cccc\n");
        assert!(!dir.path().join("out.log.1").exists());
    }

    #[test]
    fn timestamps_start_each_line_including_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), None, 0);
        s.timestamps = true;
        let mut sink = Sink::open(s).unwrap();
        sink.write(b"one\ntw").unwrap();
        sink.write(b"o\nthree").unwrap();
        let text = read(dir.path(), "out.log");
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (line, want) in lines.iter().zip(["one", "two", "three"]) {
            let (stamp, rest) = line.split_once(' ').unwrap();
            assert_eq!(rest, want);
            assert!(stamp.ends_with('Z') && stamp.len() == 27, "{stamp}");
        }
    }

    #[test]
    fn a_prefix_starts_each_line_including_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), None, 0);
        s.prefix = "[hook before_start] ".into();
        let mut sink = Sink::open(s).unwrap();
        sink.write(b"one\ntw").unwrap();
        sink.write(b"o\nthree\n").unwrap();
        assert_eq!(
            read(dir.path(), "out.log"),
            "[hook before_start] one\n[hook before_start] two\n[hook before_start] three\n"
        );
    }

    #[test]
    fn reopen_follows_a_rename_and_appends_after_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::open(spec(dir.path(), None, 0)).unwrap();
        sink.write(b"before\n").unwrap();
        std::fs::rename(dir.path().join("out.log"), dir.path().join("moved.log")).unwrap();
        sink.write(b"still old\n").unwrap();
        sink.reopen().unwrap();
        sink.write(b"after\n").unwrap();
        assert_eq!(read(dir.path(), "moved.log"), "before\nstill old\n");
        assert_eq!(read(dir.path(), "out.log"), "after\n");
        // copytruncate: the file is emptied under us; no gap of zeros.
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("out.log"))
            .unwrap()
            .set_len(0)
            .unwrap();
        sink.write(b"next\n").unwrap();
        assert_eq!(read(dir.path(), "out.log"), "next\n");
    }
}
