//! The container process's identity: groups, gid, uid and umask, and the HOME a program
//! expects when the config sets none.

use nix::unistd::{setresgid, setresuid, Gid, Uid};

use crate::error::{Context, Result};
use crate::spec::User;
use crate::sys;

/// Switch to the configured user. Call with keep-caps on, so the capability sets survive.
pub fn switch(user: &User) -> Result<()> {
    match sys::setgroups(&user.additional_gids) {
        // A user namespace whose gid map its unprivileged creator wrote itself denies
        // setgroups for good; with no groups asked for there is nothing to drop.
        Err(nix::errno::Errno::EPERM) if user.additional_gids.is_empty() => {}
        r => r.ctx(|| {
            format!(
                "setgroups {:?} (process.user.additionalGids{})",
                user.additional_gids,
                if user.additional_gids.is_empty() {
                    ""
                } else {
                    "; without root, groups beyond your own need a gid range mapped by newgidmap"
                }
            )
        })?,
    }
    let gid = Gid::from_raw(user.gid);
    setresgid(gid, gid, gid).ctx(|| format!("setresgid {} (process.user.gid)", user.gid))?;
    let uid = Uid::from_raw(user.uid);
    setresuid(uid, uid, uid).ctx(|| format!("setresuid {} (process.user.uid)", user.uid))
}

/// The home directory of `uid` from the container's /etc/passwd, "/" when not listed.
pub fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
        })
        .unwrap_or_else(|| "/".to_string())
}
