//! The XDP side of an AF_XDP port: an XSKMAP (receive queue → socket), a
//! five-instruction XDP program that redirects every frame to the socket
//! of its receive queue (and passes it to the kernel stack when that
//! queue has none), and the BPF link that attaches the program to the
//! interface for as long as its fd is open.
//!
//! Everything goes through raw `bpf(2)` calls: no libbpf.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys::{XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, bpf, owned_fd};
use crate::sock;

// bpf(2) commands.
const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_LINK_CREATE: libc::c_int = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `enum bpf_attach_type`'s `BPF_XDP`.
const BPF_XDP: u32 = 37;

/// `bpf_redirect_map` helper number.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `XDP_PASS` verdict.
const XDP_PASS: i32 = 2;
/// Offset of `rx_queue_index` in `struct xdp_md`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// An eBPF register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Reg {
    R0 = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
}

/// `struct bpf_insn`: opcode, destination and source registers (low and
/// high nibble of one byte, as the little-endian bitfield lays them out),
/// offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcode parts (`<linux/bpf_common.h>`, `<linux/bpf.h>`).
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_MOV: u8 = 0xb0;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load that names a map by its fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;

impl Insn {
    const fn new(code: u8, dst: Reg, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst as u8 & 0x0f),
            off,
            imm,
        }
    }

    /// `dst = *(u32 *)(src + off)`.
    pub(super) const fn load_u32(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(BPF_LDX | BPF_W | BPF_MEM, dst, src as u8, off, 0)
    }

    /// `dst = map` (the map named by `fd`): a two-slot instruction.
    pub(super) const fn load_map_fd(dst: Reg, fd: i32) -> [Insn; 2] {
        [
            Insn::new(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd),
            // The upper 32 bits of the immediate: none.
            Insn::new(0, Reg::R0, 0, 0, 0),
        ]
    }

    /// `dst = imm` (64-bit).
    pub(super) const fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
    }

    /// `r0 = helper(r1, …, r5)`.
    pub(super) const fn call(helper: i32) -> Insn {
        Insn::new(BPF_JMP | BPF_CALL, Reg::R0, 0, 0, helper)
    }

    /// `return r0`.
    pub(super) const fn exit() -> Insn {
        Insn::new(BPF_JMP | BPF_EXIT, Reg::R0, 0, 0, 0)
    }
}

/// The XDP program: redirect to the XSKMAP entry of the frame's receive
/// queue, `XDP_PASS` when that entry is empty.
pub(super) fn redirect_program(map_fd: i32) -> [Insn; 6] {
    let [map_lo, map_hi] = Insn::load_map_fd(Reg::R1, map_fd);
    [
        // r2 = ctx->rx_queue_index (r1 holds the `struct xdp_md *` on entry).
        Insn::load_u32(Reg::R2, Reg::R1, XDP_MD_RX_QUEUE_INDEX),
        // r1 = the XSKMAP (first slot: fd and the pseudo-map marker) …
        map_lo,
        // … (second slot: upper half of the immediate).
        map_hi,
        // r3 = XDP_PASS: the verdict bpf_redirect_map returns when the
        // queue has no socket (its flags' low bits).
        Insn::mov64_imm(Reg::R3, XDP_PASS),
        // r0 = bpf_redirect_map(map, queue index, XDP_PASS).
        Insn::call(BPF_FUNC_REDIRECT_MAP),
        // return r0.
        Insn::exit(),
    ]
}

/// How the program is attached (`options:xdp-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode if the driver has it, generic otherwise.
    #[default]
    BestEffort,
    /// Driver mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (skb) mode only (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

impl XdpMode {
    /// Parses OVS's `xdp-mode` values (`""`: best-effort).
    pub fn parse(s: &str) -> Option<XdpMode> {
        match s {
            "" | "best-effort" => Some(XdpMode::BestEffort),
            "native" | "native-with-zerocopy" => Some(XdpMode::Native),
            "generic" => Some(XdpMode::Generic),
            _ => None,
        }
    }

    /// The attach flags to try, in order.
    fn attempts(self) -> &'static [u32] {
        match self {
            XdpMode::BestEffort => &[XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE],
            XdpMode::Native => &[XDP_FLAGS_DRV_MODE],
            XdpMode::Generic => &[XDP_FLAGS_SKB_MODE],
        }
    }
}

/// `union bpf_attr` for BPF_MAP_CREATE (the fields up to `map_name`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for BPF_MAP_UPDATE_ELEM.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for BPF_PROG_LOAD (up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE (no type-specific part).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn name16(s: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, b) in n.iter_mut().zip(s.bytes().take(15)) {
        *d = b;
    }
    n
}

/// What failed while setting up XDP, with the kernel's errno.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("creating the XSKMAP: {0}")]
    Map(#[source] io::Error),
    #[error("loading the XDP program: {source}{}", if log.is_empty() { String::new() } else { format!(" (verifier: {log})") })]
    Load {
        #[source]
        source: io::Error,
        log: String,
    },
    #[error("attaching the XDP program ({mode:?} mode): {source}")]
    Attach {
        mode: XdpMode,
        #[source]
        source: io::Error,
    },
    #[error("adding queue {queue} to the XSKMAP: {source}")]
    MapUpdate {
        queue: u32,
        #[source]
        source: io::Error,
    },
}

/// The XSKMAP, the loaded program and its link to the interface. Dropping
/// it closes the link, which detaches the program.
pub(super) struct XdpProgram {
    map: OwnedFd,
    _prog: OwnedFd,
    _attachment: Attachment,
    /// The attach flags that worked.
    pub(super) flags: u32,
}

impl XdpProgram {
    /// Creates the map (one entry per queue), loads the program and
    /// attaches it to `ifindex` in `mode`.
    pub(super) fn attach(ifindex: i32, n_queues: u32, mode: XdpMode) -> Result<Self, XdpError> {
        let mut m = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: n_queues.max(1),
            map_name: name16("ferrovs_xsks"),
            ..Default::default()
        };
        let map = owned_fd(bpf(BPF_MAP_CREATE, &mut m).map_err(XdpError::Map)?);
        let prog = load(map.as_raw_fd())?;
        let mut last = None;
        for &flags in mode.attempts() {
            let mut l = LinkCreateAttr {
                prog_fd: prog.as_raw_fd() as u32,
                target_ifindex: ifindex as u32,
                attach_type: BPF_XDP,
                flags,
            };
            let attachment = match bpf(BPF_LINK_CREATE, &mut l) {
                Ok(fd) => Attachment::Link { _fd: owned_fd(fd) },
                Err(e) => {
                    tracing::debug!("XDP link on ifindex {ifindex} with flags {flags:#x}: {e}");
                    // A kernel without BPF links for XDP (before 5.9):
                    // the older netlink attach, detached on drop.
                    match netlink_set_xdp(ifindex, prog.as_raw_fd(), flags) {
                        Ok(()) => Attachment::Netlink { ifindex, flags },
                        Err(e2) => {
                            tracing::debug!("IFLA_XDP on ifindex {ifindex}: {e2}");
                            last = Some(e);
                            continue;
                        }
                    }
                }
            };
            return Ok(XdpProgram {
                map,
                _prog: prog,
                _attachment: attachment,
                flags,
            });
        }
        Err(XdpError::Attach {
            mode,
            source: last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
        })
    }

    /// Points queue `queue`'s map entry at socket `xsk`.
    pub(super) fn set_socket(&self, queue: u32, xsk: RawFd) -> Result<(), XdpError> {
        let key = queue;
        let value = xsk as u32;
        let mut a = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut a)
            .map(|_| ())
            .map_err(|source| XdpError::MapUpdate { queue, source })
    }

    /// Whether the program runs in the driver (native mode).
    pub(super) fn native(&self) -> bool {
        self.flags == XDP_FLAGS_DRV_MODE
    }
}

/// How the program is attached to the interface.
enum Attachment {
    /// A BPF link: the kernel detaches the program when its fd closes
    /// (also when the process dies).
    Link { _fd: OwnedFd },
    /// Netlink `IFLA_XDP`: detached explicitly on drop.
    Netlink { ifindex: i32, flags: u32 },
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Attachment::Netlink { ifindex, flags } = *self
            && let Err(e) = netlink_set_xdp(ifindex, -1, flags & !XDP_FLAGS_UPDATE_IF_NOEXIST)
        {
            tracing::warn!("detaching the XDP program from ifindex {ifindex}: {e}");
        }
    }
}

/// `XDP_FLAGS_UPDATE_IF_NOEXIST`: never replace another program.
const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
const RTM_SETLINK: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;

/// `RTM_SETLINK` with `IFLA_XDP { FD, FLAGS }`: attaches program `prog_fd`
/// to `ifindex` (`-1`: detaches), and waits for the kernel's answer.
fn netlink_set_xdp(ifindex: i32, prog_fd: RawFd, flags: u32) -> io::Result<()> {
    let flags = if prog_fd >= 0 {
        flags | XDP_FLAGS_UPDATE_IF_NOEXIST
    } else {
        flags
    };
    // nlmsghdr (16) + ifinfomsg (16) + IFLA_XDP (4) + FD (8) + FLAGS (8).
    let mut m = [0u8; 52];
    let put16 = |m: &mut [u8], at: usize, v: u16| m[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    let put32 = |m: &mut [u8], at: usize, v: u32| m[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    put32(&mut m, 0, 52);
    put16(&mut m, 4, RTM_SETLINK);
    put16(&mut m, 6, (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16);
    put32(&mut m, 8, 1);
    m[16] = libc::AF_UNSPEC as u8;
    put32(&mut m, 20, ifindex as u32);
    put16(&mut m, 32, 20);
    put16(&mut m, 34, IFLA_XDP | NLA_F_NESTED);
    put16(&mut m, 36, 8);
    put16(&mut m, 38, IFLA_XDP_FD);
    put32(&mut m, 40, prog_fd as u32);
    put16(&mut m, 44, 8);
    put16(&mut m, 46, IFLA_XDP_FLAGS);
    put32(&mut m, 48, flags);
    let sock = sock::socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
        libc::NETLINK_ROUTE,
    )?;
    // SAFETY: sends the live 52-byte message on our socket (to the kernel:
    // no address needed on an unbound netlink socket).
    let r = unsafe { libc::send(sock.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 1024];
    // SAFETY: receives into a live buffer of the stated size.
    let n = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // An NLMSG_ERROR with error 0 is the acknowledgement.
    if n >= 20 && u16::from_ne_bytes([reply[4], reply[5]]) == NLMSG_ERROR {
        let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        return if err == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(-err))
        };
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected netlink answer to RTM_SETLINK",
    ))
}

/// Loads the redirect program for map `map_fd`; on a refusal, loads it
/// again with the verifier log on to report why.
fn load(map_fd: RawFd) -> Result<OwnedFd, XdpError> {
    let insns = redirect_program(map_fd);
    let license = c"GPL";
    let mut log = vec![0u8; 0];
    let attempt = |log: &mut Vec<u8>| {
        let mut p = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            // No buffer at all unless a log is asked for (the kernel
            // refuses a buffer without a level or size).
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            prog_name: name16("ferrovs_xsk"),
            expected_attach_type: BPF_XDP,
            ..Default::default()
        };
        bpf(BPF_PROG_LOAD, &mut p)
    };
    match attempt(&mut log) {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(source) => {
            log.resize(16 * 1024, 0);
            if let Ok(fd) = attempt(&mut log) {
                // Refused once, accepted with the log on: take it.
                return Ok(owned_fd(fd));
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(XdpError::Load {
                source,
                log: String::from_utf8_lossy(&log[..end])
                    .trim()
                    .replace('\n', "; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction bytes, as the kernel reads them.
    fn bytes(i: &Insn) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = i.code;
        b[1] = i.regs;
        b[2..4].copy_from_slice(&i.off.to_le_bytes());
        b[4..8].copy_from_slice(&i.imm.to_le_bytes());
        b
    }

    #[test]
    fn instructions_encode_as_the_kernel_defines_them() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        // ldxw r2, [r1 + 16]: BPF_LDX|BPF_MEM|BPF_W = 0x61, dst 2, src 1.
        assert_eq!(
            bytes(&Insn::load_u32(Reg::R2, Reg::R1, 16)),
            [0x61, 0x12, 16, 0, 0, 0, 0, 0]
        );
        // lddw r1, map fd 7: 0x18, src = BPF_PSEUDO_MAP_FD, then an all-zero slot.
        let [lo, hi] = Insn::load_map_fd(Reg::R1, 7);
        assert_eq!(bytes(&lo), [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(bytes(&hi), [0; 8]);
        // mov r3, 2: BPF_ALU64|BPF_MOV|BPF_K = 0xb7.
        assert_eq!(
            bytes(&Insn::mov64_imm(Reg::R3, 2)),
            [0xb7, 0x03, 0, 0, 2, 0, 0, 0]
        );
        // call 51: 0x85.
        assert_eq!(bytes(&Insn::call(51)), [0x85, 0, 0, 0, 51, 0, 0, 0]);
        // exit: 0x95.
        assert_eq!(bytes(&Insn::exit()), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        // A negative offset is two's complement, little-endian.
        assert_eq!(
            bytes(&Insn::load_u32(Reg::R0, Reg::R3, -4)),
            [0x61, 0x30, 0xfc, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn program_redirects_by_queue_and_passes_otherwise() {
        let p = redirect_program(9);
        assert_eq!(p[0], Insn::load_u32(Reg::R2, Reg::R1, 16));
        assert_eq!(p[1].imm, 9);
        assert_eq!(p[3], Insn::mov64_imm(Reg::R3, 2));
        assert_eq!(p[4], Insn::call(51));
        assert_eq!(p[5], Insn::exit());
    }

    /// The older netlink attach (used when the kernel has no BPF link for
    /// XDP) attaches in generic mode and detaches on drop.
    #[test]
    fn netlink_attach_is_undone_on_drop() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dev = format!("dpxn{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        ip(&[
            "link",
            "add",
            &dev,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{dev}p"),
        ]);
        let ifindex = crate::netdev::ifindex(&dev).unwrap();
        let mut m = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            ..Default::default()
        };
        let map = owned_fd(bpf(BPF_MAP_CREATE, &mut m).unwrap());
        let prog = load(map.as_raw_fd()).unwrap();
        netlink_set_xdp(ifindex, prog.as_raw_fd(), XDP_FLAGS_SKB_MODE).unwrap();
        let shown = ip(&["link", "show", "dev", &dev]);
        // A second program is refused rather than replacing the first.
        let again = netlink_set_xdp(ifindex, prog.as_raw_fd(), XDP_FLAGS_SKB_MODE);
        drop(Attachment::Netlink {
            ifindex,
            flags: XDP_FLAGS_SKB_MODE,
        });
        let after = ip(&["link", "show", "dev", &dev]);
        ip(&["link", "del", &dev]);
        assert!(shown.contains("xdpgeneric"), "{shown}");
        assert!(again.is_err());
        assert!(!after.contains("xdp"), "{after}");
    }

    #[test]
    fn modes_parse_as_ovs_spells_them() {
        assert_eq!(XdpMode::parse(""), Some(XdpMode::BestEffort));
        assert_eq!(XdpMode::parse("best-effort"), Some(XdpMode::BestEffort));
        assert_eq!(XdpMode::parse("native"), Some(XdpMode::Native));
        assert_eq!(XdpMode::parse("generic"), Some(XdpMode::Generic));
        assert_eq!(XdpMode::parse("skb"), None);
        assert_eq!(
            XdpMode::BestEffort.attempts(),
            &[XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE]
        );
    }
}
