//! Who may use the control socket: root, the daemon's user, and members
//! of `socket_group` (spec §7), by the connecting process's credentials.

use nix::unistd::{Gid, Uid, User};

/// Decides which peers may use the socket (spec §7).
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    pub(super) daemon_uid: Uid,
    pub(super) group: Option<Gid>,
}

impl Authorizer {
    /// Whether a peer with this uid and primary gid may connect.
    pub(super) fn allows(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.daemon_uid.as_raw() {
            return true;
        }
        let Some(group) = self.group else {
            return false;
        };
        if gid == group.as_raw() {
            return true;
        }
        // Supplementary membership, resolved from the peer's passwd entry.
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return false;
        };
        nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&group))
    }
}
