//! Opening files and directories where other users may be able to write,
//! without following what they plant there.
//!
//! Theory of operation: the daemon usually runs as root, and writes log
//! files in directories that often belong to the application's user (its
//! own log directory). Opening `logs/web.log` by path would let that user
//! replace the file with a symlink (or a hard link) to any file on the
//! system and have root append the child's output, which the user
//! controls, to it. So a path is never handed to the kernel in one piece:
//! [`Dir::open`] walks it from `/` one component at a time, holding a
//! descriptor of each directory (`openat` with `O_NOFOLLOW`), and every
//! later operation (open, rename, unlink, stat, chown) is relative to the
//! final directory's descriptor, so swapping a directory on the way for a
//! symlink after it was checked changes nothing.
//!
//! A directory is *shared* when someone other than root and the daemon's
//! user can change its entries: it belongs to another user, or is
//! writable by a group (other than root's and the daemon's) or by
//! everyone. An entry of a shared directory may have been planted, so:
//! a symlink there is refused (in a sticky directory such as /tmp, entries
//! owned by root or the daemon's user are exempt: nobody else may replace
//! them), and a file opened there must be a regular file with one link,
//! owned by the daemon's user or the directory's owner (who could write
//! it anyway). Elsewhere, symlinks the administrator made are followed,
//! by the same walk, and a FIFO or device (`/dev/stdout`) may be a log.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag, fcntl, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

/// Most symlinks followed while resolving one path (as the kernel's 40).
const MAX_SYMLINKS: u32 = 40;
/// Mode of directories created on the way.
const DIR_MODE: u32 = 0o755;

/// Why a path could not be opened safely.
#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    /// The operating system said no.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A symlink in a directory other users can write.
    #[error("{} is a symlink in a directory {who} can write; refusing to follow it", path.display())]
    PlantedSymlink {
        /// The symlink.
        path: PathBuf,
        /// Who else can write the directory.
        who: String,
    },
    /// Something other than a regular file where a file belongs.
    #[error("{} is {kind} in a directory {who} can write; only a regular file is written there", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is (`a FIFO`, `a device`...).
        kind: &'static str,
        /// Who else can write the directory.
        who: String,
    },
    /// A regular file with more than one name.
    #[error("{} has {links} hard links in a directory {who} can write; refusing to write through a hard link", path.display())]
    HardLink {
        /// The path.
        path: PathBuf,
        /// Its link count.
        links: u64,
        /// Who else can write the directory.
        who: String,
    },
    /// A file owned by someone unexpected.
    #[error("{} is owned by uid {owner}, neither the daemon's user nor the directory's owner; refusing to write it", path.display())]
    Owner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Too many symlinks (or a loop of them).
    #[error("{}: more than {MAX_SYMLINKS} symlinks on the way", path.display())]
    Loop {
        /// The path.
        path: PathBuf,
    },
}

impl SafeError {
    fn io(path: &Path, errno: Errno) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source: errno.into(),
        }
    }

    /// Whether the path simply does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// An open directory, reached by a checked walk.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    stat: FileStat,
}

fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits())
}

fn kind_name(stat: &FileStat) -> &'static str {
    match file_type(stat) {
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR | SFlag::S_IFBLK => "a device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symlink",
        _ => "not a regular file",
    }
}

fn stat_at(dir: &impl AsFd, name: &OsStr) -> Result<FileStat, Errno> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

impl Dir {
    /// Opens the directory `path` (absolute, or relative to the current
    /// directory) by walking it; with `create`, missing directories are
    /// made (mode 0755, less the umask).
    pub fn open(path: &Path, create: bool) -> Result<Self, SafeError> {
        let start = if path.is_absolute() { "/" } else { "." };
        let mut dir = Self::root(Path::new(start))?;
        let mut pending: VecDeque<OsString> = components(path);
        let mut hops = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                dir = dir.child(OsStr::new(".."), dir.path.parent().unwrap_or(&dir.path))?;
                continue;
            }
            let full = dir.path.join(&name);
            match stat_at(&dir.fd, &name) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(
                        &dir.fd,
                        name.as_os_str(),
                        Mode::from_bits_truncate(DIR_MODE),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => pending.push_front(name),
                        Err(errno) => return Err(SafeError::io(&full, errno)),
                    }
                }
                Err(errno) => return Err(SafeError::io(&full, errno)),
                Ok(stat) if file_type(&stat) == SFlag::S_IFLNK => {
                    let target = dir.follow(&name, &stat, &mut hops)?;
                    let rest: Vec<OsString> = pending.drain(..).collect();
                    if target.is_absolute() {
                        dir = Self::root(Path::new("/"))?;
                    }
                    pending.extend(components(&target));
                    pending.extend(rest);
                }
                Ok(stat) if file_type(&stat) == SFlag::S_IFDIR => {
                    dir = dir.child(&name, &full)?;
                }
                Ok(_) => return Err(SafeError::io(&full, Errno::ENOTDIR)),
            }
        }
        Ok(dir)
    }

    fn root(path: &Path) -> Result<Self, SafeError> {
        let fd = nix::fcntl::open(path, dir_flags(), Mode::empty())
            .map_err(|e| SafeError::io(path, e))?;
        let stat = fstat(&fd).map_err(|e| SafeError::io(path, e))?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
            stat,
        })
    }

    /// Opens the subdirectory `name` (never through a symlink).
    fn child(&self, name: &OsStr, path: &Path) -> Result<Self, SafeError> {
        let fd = openat(
            &self.fd,
            name,
            dir_flags() | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            // It was a directory a moment ago: someone swapped it.
            Errno::ELOOP | Errno::ENOTDIR => SafeError::PlantedSymlink {
                path: path.to_path_buf(),
                who: self.writers().unwrap_or_else(|| "someone".into()),
            },
            other => SafeError::io(path, other),
        })?;
        let stat = fstat(&fd).map_err(|e| SafeError::io(path, e))?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
            stat,
        })
    }

    /// The target of the symlink `name` (whose stat is `link`), if this
    /// directory may be trusted to hold it.
    fn follow(&self, name: &OsStr, link: &FileStat, hops: &mut u32) -> Result<PathBuf, SafeError> {
        let path = self.path.join(name);
        if let Some(who) = self.untrusted_entry(link) {
            return Err(SafeError::PlantedSymlink { path, who });
        }
        *hops += 1;
        if *hops > MAX_SYMLINKS {
            return Err(SafeError::Loop { path });
        }
        nix::fcntl::readlinkat(&self.fd, name)
            .map(PathBuf::from)
            .map_err(|e| SafeError::io(&path, e))
    }

    /// The directory's path as it was walked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who besides root and the daemon's user can change this directory's
    /// entries, or `None` when nobody can.
    pub fn writers(&self) -> Option<String> {
        let me = Uid::effective().as_raw();
        let my_group = Gid::effective().as_raw();
        let mode = self.stat.st_mode;
        if self.stat.st_uid != 0 && self.stat.st_uid != me {
            return Some(format!("uid {} (its owner)", self.stat.st_uid));
        }
        if mode & 0o002 != 0 {
            return Some("every user".into());
        }
        let gid = self.stat.st_gid;
        if mode & 0o020 != 0 && gid != 0 && gid != my_group {
            return Some(format!("group {gid}"));
        }
        None
    }

    /// Whether only the daemon's user may enter or read the directory
    /// (owned by it, no permissions for group or others).
    #[allow(clippy::verbose_bit_mask)] // a permission mask reads as one
    pub fn is_private(&self) -> bool {
        self.stat.st_uid == Uid::effective().as_raw() && self.stat.st_mode & 0o077 == 0
    }

    /// `None` when the entry with `stat` cannot have been planted or
    /// replaced by another user; else who could have.
    fn untrusted_entry(&self, stat: &FileStat) -> Option<String> {
        let who = self.writers()?;
        let me = Uid::effective().as_raw();
        let sticky = self.stat.st_mode & 0o1000 != 0;
        let ours = |uid: u32| uid == 0 || uid == me;
        // In a sticky directory only an entry's owner (or the directory's)
        // may remove or rename it.
        if sticky && ours(self.stat.st_uid) && ours(stat.st_uid) {
            return None;
        }
        Some(who)
    }

    /// Opens `name` in this directory for appending, creating it with
    /// `mode` (less the umask) if needed; see the module documentation for
    /// what is refused. The open does not block on a FIFO without a reader
    /// (ENXIO); writes to the file do block.
    pub fn open_append(&self, name: &OsStr, mode: u32) -> Result<File, SafeError> {
        self.open_append_at(name, mode, 0)
    }

    fn open_append_at(&self, name: &OsStr, mode: u32, mut hops: u32) -> Result<File, SafeError> {
        let path = self.path.join(name);
        let existing = match stat_at(&self.fd, name) {
            Ok(stat) => Some(stat),
            Err(Errno::ENOENT) => None,
            Err(errno) => return Err(SafeError::io(&path, errno)),
        };
        let untrusted = match &existing {
            Some(stat) => self.untrusted_entry(stat),
            None => self.writers(),
        };
        if let Some(link) = existing.filter(|s| file_type(s) == SFlag::S_IFLNK) {
            let target = self.follow(name, &link, &mut hops)?;
            let full = self.path.join(target);
            let (dir, file) = split(&full).ok_or_else(|| SafeError::io(&full, Errno::EISDIR))?;
            return Dir::open(dir, false)?.open_append_at(file, mode, hops);
        }
        if let (Some(who), Some(stat)) = (&untrusted, &existing)
            && file_type(stat) != SFlag::S_IFREG
        {
            return Err(SafeError::NotRegular {
                path,
                kind: kind_name(stat),
                who: who.clone(),
            });
        }
        let flags = OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_CLOEXEC
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_NONBLOCK;
        let fd =
            openat(&self.fd, name, flags, Mode::from_bits_truncate(mode)).map_err(|errno| {
                match errno {
                    // A symlink appeared since the check.
                    Errno::ELOOP => SafeError::PlantedSymlink {
                        path: path.clone(),
                        who: untrusted.clone().unwrap_or_else(|| "someone".into()),
                    },
                    other => SafeError::io(&path, other),
                }
            })?;
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(|e| SafeError::io(&path, e))?;
        fcntl(
            &fd,
            FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) - OFlag::O_NONBLOCK),
        )
        .map_err(|e| SafeError::io(&path, e))?;
        if let Some(who) = untrusted {
            self.check_opened(&fd, &path, who)?;
        }
        Ok(File::from(fd))
    }

    /// What was opened in a shared directory must be a regular file with
    /// one link, owned by us or by the directory's owner.
    fn check_opened(&self, fd: &OwnedFd, path: &Path, who: String) -> Result<(), SafeError> {
        let stat = fstat(fd).map_err(|e| SafeError::io(path, e))?;
        if file_type(&stat) != SFlag::S_IFREG {
            return Err(SafeError::NotRegular {
                path: path.to_path_buf(),
                kind: kind_name(&stat),
                who,
            });
        }
        if stat.st_nlink > 1 {
            return Err(SafeError::HardLink {
                path: path.to_path_buf(),
                links: stat.st_nlink as u64,
                who,
            });
        }
        let me = Uid::effective().as_raw();
        if stat.st_uid != me && stat.st_uid != self.stat.st_uid {
            return Err(SafeError::Owner {
                path: path.to_path_buf(),
                owner: stat.st_uid,
            });
        }
        Ok(())
    }

    /// The entry `name` as it is (a symlink is not followed); `None` if
    /// there is none.
    pub fn stat(&self, name: &OsStr) -> Result<Option<FileStat>, SafeError> {
        match stat_at(&self.fd, name) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(SafeError::io(&self.path.join(name), errno)),
        }
    }

    /// Renames `from` to `to`, both in this directory (whatever they are:
    /// a symlink is renamed, never followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> Result<(), SafeError> {
        nix::fcntl::renameat(&self.fd, from, &self.fd, to)
            .map_err(|e| SafeError::io(&self.path.join(from), e))
    }

    /// Gives the entry `from` the name `to` as well, then drops `from`:
    /// a rename that fails (`EEXIST`) rather than replace what is at `to`.
    pub fn rename_no_replace(&self, from: &OsStr, to: &OsStr) -> Result<(), SafeError> {
        nix::unistd::linkat(&self.fd, from, &self.fd, to, AtFlags::empty())
            .map_err(|e| SafeError::io(&self.path.join(to), e))?;
        self.unlink(from)
    }

    /// Removes the entry `name` (not a directory).
    pub fn unlink(&self, name: &OsStr) -> Result<(), SafeError> {
        nix::unistd::unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| SafeError::io(&self.path.join(name), e))
    }

    /// A path naming `name` through this directory's descriptor
    /// (`/proc/self/fd/N/NAME`), for the calls that take only a path
    /// (bind, connect); the walked path when /proc is not mounted and the
    /// directory is not shared.
    pub fn fd_path(&self, name: &OsStr) -> Result<PathBuf, SafeError> {
        let proc = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        if proc.exists() {
            return Ok(proc.join(name));
        }
        match self.writers() {
            None => Ok(self.path.join(name)),
            Some(who) => Err(SafeError::Io {
                path: self.path.join(name),
                source: std::io::Error::other(format!(
                    "/proc is not mounted, and the directory is writable by {who}"
                )),
            }),
        }
    }

    /// Gives the socket `name`, which must be ours, to `owner` and `group` and sets
    /// its `mode`, on the inode checked (a path swapped meanwhile is not
    /// touched).
    pub fn secure_socket(
        &self,
        name: &OsStr,
        owner: Option<Uid>,
        group: Option<Gid>,
        mode: u32,
    ) -> Result<(), SafeError> {
        let path = self.path.join(name);
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SafeError::io(&path, e))?;
        let stat = fstat(&fd).map_err(|e| SafeError::io(&path, e))?;
        if file_type(&stat) != SFlag::S_IFSOCK || stat.st_uid != Uid::effective().as_raw() {
            return Err(SafeError::Io {
                path,
                source: std::io::Error::other("was replaced by something that is not our socket"),
            });
        }
        if owner.is_some() || group.is_some() {
            nix::unistd::fchownat(&fd, "", owner, group, AtFlags::AT_EMPTY_PATH)
                .map_err(|e| SafeError::io(&path, e))?;
        }
        // chmod through the descriptor's /proc entry reaches exactly this
        // inode (fchmod on an O_PATH descriptor is refused).
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let target = if by_fd.exists() {
            by_fd
        } else {
            self.path.join(name)
        };
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &target,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| SafeError::io(&path, e))
    }
}

fn dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

/// The named components of `path`, in order (`.` dropped, `..` kept).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// `path`'s directory and file name; `None` when it names no file.
pub fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    let name = path.file_name()?;
    if name.as_bytes() == b".." {
        return None;
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    Some((dir.unwrap_or(Path::new(".")), name))
}

/// Opens the file at `path` for appending as [`Dir::open_append`] does,
/// creating its directories first when `create_dirs`; returns the file's
/// directory too (for rotating beside it).
pub fn open_append(path: &Path, mode: u32, create_dirs: bool) -> Result<(Dir, File), SafeError> {
    let (dir, name) = split(path).ok_or_else(|| SafeError::io(path, Errno::EISDIR))?;
    let dir = Dir::open(dir, create_dirs)?;
    let file = dir.open_append(name, mode)?;
    Ok((dir, file))
}

#[cfg(test)]
mod tests;
