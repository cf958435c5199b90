//! [`GroupKill`]: the guard that kills a command's whole process group.

use std::fmt;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Kills a process group when dropped (and on demand).
pub(super) struct GroupKill(pub(super) Pid);

impl GroupKill {
    pub(super) fn kill(&self) {
        // ESRCH (the group is gone already) is the expected error; nothing else can be done
        // about the others.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for GroupKill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupKill({})", self.0)
    }
}
