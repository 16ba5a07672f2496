//! Process trees through cgroup v2: one cgroup per process, so that a
//! stop reaches everything the process started, `setsid` and
//! double-forked escapees included.
//!
//! Theory of operation: [`Tree::prepare`] finds the cgroup2 mount (the
//! unified `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` in hybrid mode)
//! and the daemon's own cgroup in it (`/proc/self/cgroup`), and makes
//! `ringmaster-NAME` under it, NAME standing for the daemon's control
//! socket, so two daemons never share one and a daemon that crashed
//! finds its leftovers ([`Tree::clean_leftovers`]). It enables there the
//! controllers it is given (cpu, memory, pids), which is allowed because
//! no process lives in it. Each spawn gets a [`Leaf`], `WATCHER-WID-SEQ`,
//! whose `cgroup.procs` the child writes itself into before it execs, so
//! nothing it starts can be outside. A leaf is *populated* while any
//! process is in it (`cgroup.events`), killed whole by `cgroup.kill`
//! (a SIGKILL to each listed pid on kernels before 5.14), and removed
//! (`rmdir`) once empty. The tree's CPU comes from `cpu.stat` (kept by
//! every cgroup), its memory from `memory.current` where the memory
//! controller is enabled.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why cgroups cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 file system is mounted.
    #[error("no cgroup2 file system is mounted")]
    NoMount,
    /// The daemon's own cgroup could not be found.
    #[error("cannot tell the daemon's cgroup from /proc/self/cgroup")]
    NoOwnCgroup,
    /// A cgroup could not be made, opened or changed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The daemon's cgroup for its processes.
#[derive(Debug, Clone)]
pub struct Tree {
    base: PathBuf,
    /// Controllers enabled for the processes' cgroups.
    controllers: Vec<String>,
}

/// Where the cgroup2 file system is mounted, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        // Field 4 is the mount's root within the file system: "/" for
        // the whole hierarchy (a cgroup namespace's own root too).
        let point = fields.get(4)?;
        (fstype == "cgroup2" && fields.get(3) == Some(&"/")).then(|| PathBuf::from(unescape(point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        if let Some(byte) = code {
            out.push(char::from(byte));
            rest = &rest[at + 4..];
        } else {
            out.push('\\');
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// The daemon's cgroup, relative to the cgroup2 root ("/" at the root).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_owned)
}

/// A short stable name for `key` (FNV-1a, 32 bits, in hex).
fn short_hash(key: &[u8]) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// Reads a cgroup file.
fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Writes `value` to a cgroup file, in one write as the kernel wants.
fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    file.write_all(value.as_bytes()).map_err(io(path))
}

impl Tree {
    /// Finds the daemon's cgroup and makes `ringmaster-NAME` under it for
    /// the processes, NAME standing for `key` (the control socket's
    /// path), with the `wanted` controllers that are available enabled.
    pub fn prepare(key: &OsStr, wanted: &[&str]) -> Result<Self, CgroupError> {
        let mount = cgroup2_mount().ok_or(CgroupError::NoMount)?;
        let own = own_cgroup().ok_or(CgroupError::NoOwnCgroup)?;
        let parent = mount.join(own.trim_start_matches('/'));
        let base = parent.join(format!("ringmaster-{}", short_hash(key.as_encoded_bytes())));
        match std::fs::create_dir(&base) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io(&base)(err)),
        }
        let available = read(&base.join("cgroup.controllers"))?;
        let mut controllers = Vec::new();
        for name in wanted {
            if available.split_whitespace().any(|c| c == *name)
                && write(&base.join("cgroup.subtree_control"), &format!("+{name}")).is_ok()
            {
                controllers.push((*name).to_owned());
            }
        }
        Ok(Self { base, controllers })
    }

    /// The directory holding the processes' cgroups.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The controllers each process's cgroup has.
    pub fn controllers(&self) -> &[String] {
        &self.controllers
    }

    /// Makes the cgroup `name` for one process.
    pub fn create(&self, name: &str) -> Result<Leaf, CgroupError> {
        let path = self.base.join(name);
        std::fs::create_dir(&path).map_err(io(&path))?;
        Ok(Leaf { path })
    }

    /// Ends whatever a previous daemon left in its cgroups (it crashed, or
    /// was killed): every process is killed and every cgroup removed.
    /// Returns how many cgroups were found.
    pub fn clean_leftovers(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return 0;
        };
        let leaves: Vec<Leaf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| Leaf { path: e.path() })
            .collect();
        for leaf in &leaves {
            if leaf.populated() {
                let _ = leaf.kill();
            }
        }
        for leaf in &leaves {
            // Killed processes leave the cgroup as they exit: a moment.
            for _ in 0..100 {
                if leaf.remove().is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        leaves.len()
    }

    /// Removes the processes' cgroups that are empty, and the base once
    /// it has none left (at shutdown).
    pub fn remove(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.base) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.base);
    }
}

/// One process's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    path: PathBuf,
}

/// What a process's whole tree uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TreeUsage {
    /// CPU time of every process that ran in it, in seconds.
    pub cpu_seconds: f64,
    /// Memory charged to it, where the memory controller is enabled.
    pub memory_bytes: Option<u64>,
    /// Processes in it now.
    pub processes: u64,
}

impl Leaf {
    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its directory, open (close-on-exec): where clone3 creates a child
    /// (`CLONE_INTO_CGROUP`).
    pub fn open_dir(&self) -> Result<OwnedFd, CgroupError> {
        OpenOptions::new()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_DIRECTORY).bits())
            .open(&self.path)
            .map(OwnedFd::from)
            .map_err(io(&self.path))
    }

    /// Its `cgroup.procs`, open for writing: a child writes `0` to it to
    /// join (close-on-exec, so no program ever holds it).
    pub fn open_procs(&self) -> Result<OwnedFd, CgroupError> {
        let path = self.path.join("cgroup.procs");
        OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_CLOEXEC.bits())
            .open(&path)
            .map(OwnedFd::from)
            .map_err(io(&path))
    }

    /// Whether any process is in it; a cgroup gone is empty.
    pub fn populated(&self) -> bool {
        read(&self.path.join("cgroup.events"))
            .is_ok_and(|events| events.lines().any(|line| line.trim() == "populated 1"))
    }

    /// SIGKILLs every process in it: `cgroup.kill`, or each pid listed
    /// on a kernel without it.
    pub fn kill(&self) -> Result<(), CgroupError> {
        let kill_file = self.path.join("cgroup.kill");
        if kill_file.exists() {
            return write(&kill_file, "1");
        }
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        Ok(())
    }

    /// The pids in it now.
    pub fn pids(&self) -> Vec<i32> {
        read(&self.path.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Removes it; fails while a process is in it.
    pub fn remove(&self) -> Result<(), CgroupError> {
        match std::fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io(&self.path)(err)),
        }
    }

    /// What the tree uses, from the cgroup's own files.
    pub fn usage(&self) -> TreeUsage {
        usage_of(&self.path)
    }
}

/// What the processes of the cgroup at `path` use (see [`Leaf::usage`]).
pub fn usage_of(path: &Path) -> TreeUsage {
    let usec = std::fs::read_to_string(path.join("cpu.stat"))
        .ok()
        .and_then(|stat| {
            stat.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    TreeUsage {
        cpu_seconds: usec as f64 / 1e6,
        memory_bytes: std::fs::read_to_string(path.join("memory.current"))
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        processes: std::fs::read_to_string(path.join("cgroup.procs"))
            .map_or(0, |t| t.lines().count() as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        assert_eq!(unescape(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/odd\\x"), r"/odd\\x");
    }

    #[test]
    fn names_are_stable_and_differ() {
        assert_eq!(
            short_hash(b"/run/ringmaster.sock"),
            short_hash(b"/run/ringmaster.sock")
        );
        assert_ne!(short_hash(b"/run/a.sock"), short_hash(b"/run/b.sock"));
        assert_eq!(short_hash(b"").len(), 8);
    }

    #[test]
    fn a_leaf_holds_a_child_and_kill_empties_it() {
        let Ok(tree) = Tree::prepare(OsStr::new("ringmaster-cgroup-unit-test"), &[]) else {
            eprintln!("SKIPPED: no writable cgroup2 here");
            return;
        };
        let leaf = tree
            .create(&format!("unit-{}", std::process::id()))
            .unwrap();
        assert!(!leaf.populated());
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        std::fs::write(leaf.path().join("cgroup.procs"), child.id().to_string()).unwrap();
        assert!(leaf.populated());
        assert_eq!(leaf.pids(), [child.id() as i32]);
        assert!(leaf.remove().is_err(), "a populated cgroup was removed");
        leaf.kill().unwrap();
        let _ = child.wait();
        for _ in 0..100 {
            if !leaf.populated() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!leaf.populated());
        assert!(leaf.usage().cpu_seconds >= 0.0);
        leaf.remove().unwrap();
        tree.remove();
        assert!(!tree.base().exists());
    }
}
