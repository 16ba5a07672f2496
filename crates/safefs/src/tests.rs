//! Each planted thing, planted for real: these run as root (as CI does),
//! with directories given to `nobody`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

const NOBODY: u32 = 65534;

/// A temp dir, and inside it `shared/`, owned by nobody (mode 0755).
fn setup() -> Option<(tempfile::TempDir, PathBuf)> {
    if !Uid::effective().is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs these as root");
        eprintln!("SKIPPED: needs root to give a directory to another user");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(NOBODY), Some(NOBODY)).unwrap();
    Some((dir, shared))
}

/// A root-only file standing for /etc/shadow.
fn secret(dir: &Path) -> PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, "root only\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn append(path: &Path) -> Result<(), SafeError> {
    let (_, mut file) = open_append(path, 0o640, true)?;
    file.write_all(b"child output\n").unwrap();
    Ok(())
}

#[test]
fn a_new_file_and_its_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c.log");
    append(&path).unwrap();
    append(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "child output\n".repeat(2)
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "{mode:o}");
}

#[test]
fn a_symlink_planted_in_a_shared_directory_is_refused() {
    let Some((dir, shared)) = setup() else { return };
    let secret = secret(dir.path());
    std::os::unix::fs::symlink(&secret, shared.join("w.log")).unwrap();
    let err = append(&shared.join("w.log")).unwrap_err();
    assert!(matches!(err, SafeError::PlantedSymlink { .. }), "{err}");
    assert!(err.to_string().contains("uid 65534"), "{err}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
}

#[test]
fn a_symlink_the_administrator_made_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", dir.path().join("logs")).unwrap();
    std::os::unix::fs::symlink("../real/target.log", dir.path().join("real/link.log")).unwrap();
    append(&dir.path().join("logs/link.log")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("real/target.log")).unwrap(),
        "child output\n"
    );
}

#[test]
fn a_fifo_in_a_shared_directory_is_refused_without_blocking() {
    let Some((_dir, shared)) = setup() else {
        return;
    };
    let fifo = shared.join("w.log");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o666)).unwrap();
    let err = append(&fifo).unwrap_err();
    assert!(
        matches!(err, SafeError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );
}

#[test]
fn a_hard_link_to_a_root_file_is_refused() {
    let Some((_dir, shared)) = setup() else {
        return;
    };
    // On the same filesystem, as a hard link must be.
    let secret = secret(&shared);
    std::fs::hard_link(&secret, shared.join("w.log")).unwrap();
    let err = append(&shared.join("w.log")).unwrap_err();
    assert!(matches!(err, SafeError::HardLink { links: 2, .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
}

#[test]
fn a_file_of_a_third_user_is_refused_but_the_owners_own_is_written() {
    let Some((_dir, shared)) = setup() else {
        return;
    };
    let theirs = shared.join("theirs.log");
    std::fs::write(&theirs, "").unwrap();
    std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
    let err = append(&theirs).unwrap_err();
    assert!(matches!(err, SafeError::Owner { owner: 4242, .. }), "{err}");
    let owners = shared.join("owners.log");
    std::fs::write(&owners, "").unwrap();
    std::os::unix::fs::chown(&owners, Some(NOBODY), Some(NOBODY)).unwrap();
    append(&owners).unwrap();
    // And a file created there is ours.
    append(&shared.join("new.log")).unwrap();
    assert_eq!(std::fs::metadata(shared.join("new.log")).unwrap().uid(), 0);
}

#[test]
fn a_directory_on_the_way_swapped_for_a_symlink_is_refused() {
    let Some((dir, shared)) = setup() else { return };
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, shared.join("sub")).unwrap();
    let err = append(&shared.join("sub/w.log")).unwrap_err();
    assert!(matches!(err, SafeError::PlantedSymlink { .. }), "{err}");
    assert!(!elsewhere.join("w.log").exists());
}

#[test]
fn a_directory_swapped_after_it_was_opened_changes_nothing() {
    let Some((dir, shared)) = setup() else { return };
    std::fs::create_dir(shared.join("sub")).unwrap();
    let opened = Dir::open(&shared.join("sub"), false).unwrap();
    // The swap happens between the walk and the open.
    std::fs::rename(shared.join("sub"), shared.join("sub.old")).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, shared.join("sub")).unwrap();
    let mut file = opened.open_append(OsStr::new("w.log"), 0o640).unwrap();
    file.write_all(b"x\n").unwrap();
    assert!(shared.join("sub.old/w.log").exists());
    assert!(!elsewhere.join("w.log").exists());
}

#[test]
fn in_a_sticky_directory_only_others_entries_are_suspect() {
    let Some((dir, _shared)) = setup() else {
        return;
    };
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    // Root's own symlink there cannot have been replaced by anyone else.
    std::os::unix::fs::symlink(dir.path().join("real"), tmp.join("mine")).unwrap();
    append(&tmp.join("mine/w.log")).unwrap();
    // Someone else's is refused.
    std::os::unix::fs::symlink(dir.path().join("real"), tmp.join("theirs")).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &tmp.join("theirs"),
        Some(Uid::from_raw(NOBODY)),
        None,
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let err = append(&tmp.join("theirs/w.log")).unwrap_err();
    assert!(matches!(err, SafeError::PlantedSymlink { .. }), "{err}");
}

#[test]
fn rotation_renames_inside_the_opened_directory() {
    let Some((_dir, shared)) = setup() else {
        return;
    };
    let (dir, _) = open_append(&shared.join("w.log"), 0o640, false).unwrap();
    // A symlink planted as the next backup name is replaced, not followed.
    std::os::unix::fs::symlink("/etc/passwd", shared.join("w.log.1")).unwrap();
    dir.rename(OsStr::new("w.log"), OsStr::new("w.log.1"))
        .unwrap();
    let meta = std::fs::symlink_metadata(shared.join("w.log.1")).unwrap();
    assert!(meta.is_file());
}
