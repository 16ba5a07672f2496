//! Where the control socket lives when nobody says.

use std::path::PathBuf;

/// Environment variable naming the control socket, read by `ringmasterctl`
/// and set by the daemon in every child's environment.
pub const SOCKET_ENV: &str = "RINGMASTER_SOCKET";

/// The default control socket path (spec §4): `/run/ringmaster.sock` for
/// root, else `$XDG_RUNTIME_DIR/ringmaster.sock`, else
/// `/tmp/ringmaster-UID/ringmaster.sock` (the daemon creates that directory
/// with mode 0700 and refuses it if someone else owns it).
pub fn default_socket_path() -> PathBuf {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        return PathBuf::from("/run/ringmaster.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("ringmaster.sock"),
        _ => PathBuf::from(format!("/tmp/ringmaster-{uid}/ringmaster.sock")),
    }
}
