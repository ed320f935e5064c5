//! `linux.netDevices` (runtime-spec 1.3): move existing network devices of rt's network
//! namespace into the container's, renamed where `name` says (a name ending in `%d` lets
//! the kernel pick a free one). The kernel keeps a device's attributes (MTU, address,
//! ...) across the move but drops its IP addresses: the permanent, global ones are read
//! first and given back inside. The device is then set up. Nothing is moved back on
//! delete: the kernel returns physical devices and destroys virtual ones with the
//! namespace (the spec's rule). Talks rtnetlink directly, one request at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};

use crate::bail;
use crate::error::{Context, Error, Result};
use crate::spec::NetDevice;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;

/// One IP address as RTM_GETADDR gives it: the ifaddrmsg header and its attributes, to be
/// sent back as they were.
#[derive(Debug, Clone)]
struct Address {
    family: u8,
    prefixlen: u8,
    flags: u8,
    scope: u8,
    attrs: Vec<(u16, Vec<u8>)>,
}

/// Check everything that can be checked before the container exists: each device is
/// there, and the container gets a network namespace of its own to move it into.
pub fn check(devices: &BTreeMap<String, NetDevice>, new_netns: bool) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    if !new_netns {
        bail!("linux.netDevices: the container needs a network namespace of its own (a new \"network\" entry in linux.namespaces) to move devices into");
    }
    for (host, d) in devices {
        index_of(host)?;
        if let Some(name) = &d.name {
            if name.is_empty()
                || name.len() > 15
                || name.contains('/')
                || name.contains(char::is_whitespace)
            {
                bail!("linux.netDevices.{host}.name: {name:?} is not a valid interface name");
            }
        }
    }
    Ok(())
}

/// Move every device into the network namespace of `pid` (the container's init).
pub fn move_all(devices: &BTreeMap<String, NetDevice>, pid: i32) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let host = Netlink::open()?;
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = File::open(&ns_path).ctx(|| format!("open {ns_path}"))?;
    let inside = Netlink::open_in(&ns)?;
    for (host_name, d) in devices {
        let name = d.name.as_deref().unwrap_or(host_name);
        let what = |s: &str| format!("linux.netDevices.{host_name}: {s}");
        let index = index_of(host_name)?;
        let addresses: Vec<Address> = host
            .addresses(index)?
            .into_iter()
            .filter(|a| a.scope == RT_SCOPE_UNIVERSE && a.permanent())
            .collect();
        if !name.contains("%d") && inside.link_index(name)?.is_some() {
            bail!(
                "{}",
                what(&format!(
                    "the container already has a device named {name:?}"
                ))
            );
        }
        host.move_link(
            index,
            ns.as_fd().as_raw_fd(),
            (name != host_name).then_some(name),
        )
        .map_err(|e| e.context(what(&format!("move it into {ns_path} as {name:?}"))))?;
        // The index stays when it is free in the container's namespace (it is in a new one).
        let new_index = match inside.link_index(name)? {
            Some(i) => i,
            None if inside.link_by_index(index)? => index,
            None => bail!(
                "{}",
                what("moved, but not found in the container's namespace")
            ),
        };
        for a in &addresses {
            inside
                .add_address(new_index, a)
                .map_err(|e| e.context(what("give its address back in the container")))?;
        }
        inside
            .set_up(new_index)
            .map_err(|e| e.context(what("set it up in the container")))?;
    }
    Ok(())
}

fn index_of(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| Error::msg(format!("linux.netDevices: bad device name {name:?}")))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(Error::sys(
            format!("linux.netDevices: no network device {name:?} in rt's network namespace"),
            Errno::last(),
        )),
        i => Ok(i),
    }
}

impl Address {
    fn permanent(&self) -> bool {
        let extended = self
            .attrs
            .iter()
            .find(|(t, _)| *t == IFA_FLAGS)
            .and_then(|(_, v)| v.get(..4))
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        extended.unwrap_or(self.flags as u32) & IFA_F_PERMANENT != 0
    }
}

/// A NETLINK_ROUTE socket, in the network namespace it was made in.
struct Netlink {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

impl Netlink {
    fn open() -> Result<Netlink> {
        // SAFETY: socket(2) with constant arguments; a new fd we own on success.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Error::sys(
                "socket(AF_NETLINK, NETLINK_ROUTE)",
                Errno::last(),
            ));
        }
        Ok(Netlink {
            // SAFETY: the fd was just returned by the kernel.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            seq: std::cell::Cell::new(1),
        })
    }

    /// A socket in the network namespace `ns`: rt steps in to make it (a socket stays in
    /// the namespace it was made in) and back out. rt is single-threaded.
    fn open_in(ns: &File) -> Result<Netlink> {
        let own = File::open("/proc/self/ns/net").ctx(|| "open /proc/self/ns/net")?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
            .ctx(|| "setns into the container's network namespace")?;
        let sock = Netlink::open();
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
            .ctx(|| "setns back to rt's network namespace")?;
        sock
    }

    /// Send one request and collect the answers: the messages of a dump, or the ack.
    fn request(&self, kind: u16, flags: u16, body: &[u8]) -> Result<Vec<(u16, Vec<u8>)>> {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        nix::unistd::write(&self.fd, &msg).ctx(|| "send on the netlink socket")?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = nix::unistd::read(&self.fd, &mut buf).ctx(|| "read from the netlink socket")?;
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || off + len > n {
                    bail!("netlink: a truncated answer");
                }
                let payload = &buf[off + 16..off + len];
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(payload[..4].try_into().unwrap_or_default());
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(Error::sys("netlink", Errno::from_raw(-code)));
                    }
                    _ => out.push((kind, payload.to_vec())),
                }
                off += align(len);
            }
            if flags & NLM_F_DUMP == 0 && !out.is_empty() {
                return Ok(out);
            }
        }
    }

    fn addresses(&self, index: u32) -> Result<Vec<Address>> {
        let body = ifaddrmsg(libc::AF_UNSPEC as u8, 0, 0, 0, 0);
        let mut out = Vec::new();
        for (_, p) in self.request(RTM_GETADDR, NLM_F_DUMP, &body)? {
            if p.len() < 8 || u32::from_ne_bytes(p[4..8].try_into().unwrap_or_default()) != index {
                continue;
            }
            out.push(Address {
                family: p[0],
                prefixlen: p[1],
                flags: p[2],
                scope: p[3],
                attrs: parse_attrs(&p[8..]),
            });
        }
        Ok(out)
    }

    /// The index of the device named `name`, if there is one.
    fn link_index(&self, name: &str) -> Result<Option<u32>> {
        let mut body = ifinfomsg(0, 0, 0);
        put_attr(&mut body, IFLA_IFNAME, &nul_terminated(name));
        match self.request(RTM_GETLINK, 0, &body) {
            Ok(answers) => Ok(answers
                .first()
                .filter(|(_, p)| p.len() >= 8)
                .map(|(_, p)| i32::from_ne_bytes(p[4..8].try_into().unwrap_or_default()) as u32)),
            Err(e) if e.to_string().contains("ENODEV") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link_by_index(&self, index: u32) -> Result<bool> {
        match self.request(RTM_GETLINK, 0, &ifinfomsg(index as i32, 0, 0)) {
            Ok(answers) => Ok(!answers.is_empty()),
            Err(e) if e.to_string().contains("ENODEV") => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn move_link(&self, index: u32, ns_fd: i32, name: Option<&str>) -> Result<()> {
        let mut body = ifinfomsg(index as i32, 0, 0);
        put_attr(&mut body, IFLA_NET_NS_FD, &(ns_fd as u32).to_ne_bytes());
        if let Some(n) = name {
            put_attr(&mut body, IFLA_IFNAME, &nul_terminated(n));
        }
        self.request(RTM_NEWLINK, NLM_F_ACK, &body).map(drop)
    }

    fn add_address(&self, index: u32, a: &Address) -> Result<()> {
        let mut body = ifaddrmsg(a.family, a.prefixlen, a.flags, a.scope, index);
        for (t, v) in &a.attrs {
            // Counters and cache info belong to the old address, not the new one.
            if matches!(*t, 1 | 2 | 4 | 8) {
                put_attr(&mut body, *t, v);
            }
        }
        self.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)
            .map(drop)
    }

    fn set_up(&self, index: u32) -> Result<()> {
        self.request(
            RTM_NEWLINK,
            NLM_F_ACK,
            &ifinfomsg(index as i32, IFF_UP, IFF_UP),
        )
        .map(drop)
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4]; // family, pad, type
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

fn ifaddrmsg(family: u8, prefixlen: u8, flags: u8, scope: u8, index: u32) -> Vec<u8> {
    let mut b = vec![family, prefixlen, flags, scope];
    b.extend_from_slice(&index.to_ne_bytes());
    b
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn put_attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align(buf.len()), 0);
}

fn parse_attrs(mut b: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, b[4..len].to_vec()));
        b = &b[align(len).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut b = Vec::new();
        put_attr(&mut b, IFLA_IFNAME, &nul_terminated("eth1"));
        put_attr(&mut b, IFA_FLAGS, &IFA_F_PERMANENT.to_ne_bytes());
        assert_eq!(b.len() % 4, 0);
        let attrs = parse_attrs(&b);
        assert_eq!(attrs[0], (IFLA_IFNAME, b"eth1\0".to_vec()));
        let a = Address {
            family: libc::AF_INET as u8,
            prefixlen: 24,
            flags: 0,
            scope: 0,
            attrs,
        };
        assert!(a.permanent(), "IFA_FLAGS says permanent");
    }

    #[test]
    fn missing_device_and_names_are_refused() {
        let mut d = BTreeMap::new();
        d.insert("rt-no-such-dev0".to_string(), NetDevice { name: None });
        let e = check(&d, true).unwrap_err().to_string();
        assert!(e.contains("no network device \"rt-no-such-dev0\""), "{e}");
        assert!(check(&d, false)
            .unwrap_err()
            .to_string()
            .contains("network namespace of its own"));
        let mut lo = BTreeMap::new();
        lo.insert(
            "lo".to_string(),
            NetDevice {
                name: Some("a name".into()),
            },
        );
        assert!(check(&lo, true).is_err());
    }
}
