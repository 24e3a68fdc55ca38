//! The Nicira extension actions with a structured argument (learn, ct, nat,
//! multipath, bundle, the extended controller action): their model, and
//! their ovs-ofctl text syntax (parsed and printed exactly as ovs-ofctl
//! does). The simple ones live directly in [`crate::action::Action`].

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::action::{Action, PortNo, SubField};
use crate::field::Field;
use crate::text::{
    ParseOptions, TextError, bad_action, format_actions, format_field_value, format_port,
    format_subfield, parse_actions_nested, parse_field_value, parse_subfield, parse_uint,
    split_top,
};

// ---------------------------------------------------------------------------
// Model

/// Why a packet goes to the controller (OpenFlow's packet-in reason).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PacketInReason {
    NoMatch,
    Action,
    InvalidTtl,
    ActionSet,
    Group,
    PacketOut,
}

impl PacketInReason {
    pub fn name(self) -> &'static str {
        match self {
            PacketInReason::NoMatch => "no_match",
            PacketInReason::Action => "action",
            PacketInReason::InvalidTtl => "invalid_ttl",
            PacketInReason::ActionSet => "action_set",
            PacketInReason::Group => "group",
            PacketInReason::PacketOut => "packet_out",
        }
    }

    pub fn from_name(s: &str) -> Option<PacketInReason> {
        (0..6)
            .filter_map(PacketInReason::from_wire)
            .find(|r| r.name() == s)
    }

    pub fn wire(self) -> u8 {
        self as u8
    }

    pub fn from_wire(v: u8) -> Option<PacketInReason> {
        Some(match v {
            0 => PacketInReason::NoMatch,
            1 => PacketInReason::Action,
            2 => PacketInReason::InvalidTtl,
            3 => PacketInReason::ActionSet,
            4 => PacketInReason::Group,
            5 => PacketInReason::PacketOut,
            _ => return None,
        })
    }
}

/// The extended controller action.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ControllerSpec {
    pub max_len: u16,
    pub controller_id: u16,
    pub reason: PacketInReason,
    pub userdata: Vec<u8>,
    pub pause: bool,
    /// 0 = no meter.
    pub meter_id: u32,
}

impl Default for ControllerSpec {
    fn default() -> Self {
        ControllerSpec {
            max_len: u16::MAX,
            controller_id: 0,
            reason: PacketInReason::Action,
            userdata: Vec::new(),
            pause: false,
            meter_id: 0,
        }
    }
}

impl ControllerSpec {
    /// True when the plain `CONTROLLER:max_len` says everything.
    pub fn is_plain(&self) -> bool {
        self.reason == PacketInReason::Action
            && self.controller_id == 0
            && self.userdata.is_empty()
            && !self.pause
            && self.meter_id == 0
    }

    /// The action: the plain one when nothing else is set.
    pub fn into_action(self) -> Action {
        if self.is_plain() {
            Action::Controller {
                max_len: self.max_len,
            }
        } else {
            Action::ControllerEx(Box::new(self))
        }
    }
}

/// Which packet fields multipath and bundle hash (NX_HASH_FIELDS_*).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HashFields {
    EthSrc,
    SymmetricL4,
    SymmetricL3L4,
    SymmetricL3L4Udp,
    NwSrc,
    NwDst,
    SymmetricL3,
}

impl HashFields {
    pub const ALL: [HashFields; 7] = [
        HashFields::EthSrc,
        HashFields::SymmetricL4,
        HashFields::SymmetricL3L4,
        HashFields::SymmetricL3L4Udp,
        HashFields::NwSrc,
        HashFields::NwDst,
        HashFields::SymmetricL3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HashFields::EthSrc => "eth_src",
            HashFields::SymmetricL4 => "symmetric_l4",
            HashFields::SymmetricL3L4 => "symmetric_l3l4",
            HashFields::SymmetricL3L4Udp => "symmetric_l3l4+udp",
            HashFields::NwSrc => "nw_src",
            HashFields::NwDst => "nw_dst",
            HashFields::SymmetricL3 => "symmetric_l3",
        }
    }

    pub fn wire(self) -> u16 {
        self as u16
    }

    pub fn from_wire(v: u16) -> Option<HashFields> {
        HashFields::ALL.get(usize::from(v)).copied()
    }

    fn from_name(s: &str) -> Option<HashFields> {
        HashFields::ALL.into_iter().find(|h| h.name() == s)
    }
}

/// Multipath link selection (NX_MP_ALG_*).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MultipathAlgorithm {
    ModuloN,
    HashThreshold,
    Hrw,
    IterHash,
}

impl MultipathAlgorithm {
    const ALL: [MultipathAlgorithm; 4] = [
        MultipathAlgorithm::ModuloN,
        MultipathAlgorithm::HashThreshold,
        MultipathAlgorithm::Hrw,
        MultipathAlgorithm::IterHash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MultipathAlgorithm::ModuloN => "modulo_n",
            MultipathAlgorithm::HashThreshold => "hash_threshold",
            MultipathAlgorithm::Hrw => "hrw",
            MultipathAlgorithm::IterHash => "iter_hash",
        }
    }

    pub fn wire(self) -> u16 {
        self as u16
    }

    pub fn from_wire(v: u16) -> Option<MultipathAlgorithm> {
        MultipathAlgorithm::ALL.get(usize::from(v)).copied()
    }
}

/// `multipath(fields,basis,algorithm,n_links,arg,dst)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Multipath {
    pub fields: HashFields,
    pub basis: u16,
    pub algorithm: MultipathAlgorithm,
    /// Number of links, 1..=65536 (the wire carries n_links - 1).
    pub n_links: u32,
    pub arg: u32,
    pub dst: SubField,
}

/// Bundle member selection (NX_BD_ALG_*).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BundleAlgorithm {
    ActiveBackup,
    Hrw,
}

impl BundleAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            BundleAlgorithm::ActiveBackup => "active_backup",
            BundleAlgorithm::Hrw => "hrw",
        }
    }

    pub fn wire(self) -> u16 {
        self as u16
    }

    pub fn from_wire(v: u16) -> Option<BundleAlgorithm> {
        match v {
            0 => Some(BundleAlgorithm::ActiveBackup),
            1 => Some(BundleAlgorithm::Hrw),
            _ => None,
        }
    }
}

/// `bundle(fields,basis,algorithm,ofport,members:P,...)`, or with `dst`
/// `bundle_load(fields,basis,algorithm,ofport,DST,members:P,...)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Bundle {
    pub fields: HashFields,
    pub basis: u16,
    pub algorithm: BundleAlgorithm,
    pub members: Vec<PortNo>,
    pub dst: Option<SubField>,
}

/// Where a learn spec's value comes from.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum LearnSrc {
    Field(SubField),
    /// An immediate value of the destination's width.
    Imm(u128),
}

/// One spec of a `learn` action.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum LearnSpec {
    /// The learned flow matches `dst` against `src`.
    Match { src: LearnSrc, dst: SubField },
    /// The learned flow loads `src` into `dst`.
    Load { src: LearnSrc, dst: SubField },
    /// The learned flow outputs to the port in `src`.
    Output { src: SubField },
}

impl LearnSpec {
    pub fn n_bits(&self) -> u8 {
        match self {
            LearnSpec::Match { dst, .. } | LearnSpec::Load { dst, .. } => dst.n_bits,
            LearnSpec::Output { src } => src.n_bits,
        }
    }
}

/// `learn` flag: send a flow-removed message for learned flows.
pub const LEARN_SEND_FLOW_REM: u16 = 1;
/// `learn` flag: delete learned flows when the learning flow goes.
pub const LEARN_DELETE_LEARNED: u16 = 2;
/// `learn` flag: write whether learning succeeded to `result_dst`.
pub const LEARN_WRITE_RESULT: u16 = 4;

/// `learn(...)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Learn {
    pub table: u8,
    /// 0 = permanent.
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub fin_idle_timeout: u16,
    pub fin_hard_timeout: u16,
    pub priority: u16,
    pub cookie: u64,
    /// `LEARN_*` flags.
    pub flags: u16,
    /// Most flows this action may have learned at once (0 = no limit).
    pub limit: u32,
    pub result_dst: Option<SubField>,
    pub specs: Vec<LearnSpec>,
}

impl Default for Learn {
    fn default() -> Self {
        Learn {
            table: 1,
            idle_timeout: 0,
            hard_timeout: 0,
            fin_idle_timeout: 0,
            fin_hard_timeout: 0,
            priority: 0x8000,
            cookie: 0,
            flags: 0,
            limit: 0,
            result_dst: None,
            specs: Vec::new(),
        }
    }
}

/// `ct` flag `commit`.
pub const CT_COMMIT: u16 = 1;
/// `ct` flag `force`.
pub const CT_FORCE: u16 = 2;

/// `ct(...)`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Ct {
    /// `CT_*` flags.
    pub flags: u16,
    /// Zone from a subfield (`zone=NXM_NX_REG0[0..15]`), else `zone_imm`.
    pub zone_src: Option<SubField>,
    pub zone_imm: u16,
    /// Table to continue in after conntrack (`table=N`).
    pub table: Option<u8>,
    /// Application-layer gateway port (21 = ftp, 69 = tftp; 0 = none).
    pub alg: u16,
    /// `nat(...)` and the `exec(...)` actions, in order.
    pub actions: Vec<Action>,
}

/// An address range of `nat`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NatRange {
    V4 { min: u32, max: Option<u32> },
    V6 { min: u128, max: Option<u128> },
}

/// `nat` flag: source NAT.
pub const NAT_SRC: u16 = 1;
/// `nat` flag: destination NAT.
pub const NAT_DST: u16 = 2;
pub const NAT_PERSISTENT: u16 = 4;
pub const NAT_PROTO_HASH: u16 = 8;
pub const NAT_PROTO_RANDOM: u16 = 16;

/// `nat[(src|dst=ADDR[-ADDR][:PORT[-PORT]][,persistent][,hash|random])]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Nat {
    /// `NAT_*` flags.
    pub flags: u16,
    pub range: Option<NatRange>,
    pub proto_min: Option<u16>,
    pub proto_max: Option<u16>,
}

// ---------------------------------------------------------------------------
// Parsing (called from `text::parse_action`)

fn num<T: TryFrom<u128>>(action: &str, s: &str) -> Result<T, TextError> {
    parse_uint(s.trim())
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| bad_action(action, format!("{s}: invalid number")))
}

/// Parses the Nicira actions of this module and the simple new ones
/// (`name` and its argument as split by `text`); `Ok(None)` when `name` is
/// none of them.
pub(crate) fn parse_nx_action(
    name: &str,
    arg: Option<&str>,
    opts: &ParseOptions<'_>,
) -> Result<Option<Action>, TextError> {
    let need = || arg.ok_or_else(|| bad_action(name, "requires an argument"));
    let a = match name {
        "controller" => Some(parse_controller(need()?)?),
        "dec_ttl" => {
            let ids = need()?
                .split(',')
                .map(|x| num::<u16>(name, x))
                .collect::<Result<Vec<_>, _>>()?;
            Some(Action::DecTtlIds(ids))
        }
        "push" => Some(Action::StackPush(parse_subfield(name, need()?.trim())?)),
        "pop" => Some(Action::StackPop(parse_subfield(name, need()?.trim())?)),
        "note" => {
            let mut bytes = Vec::new();
            for part in need()?.split(['.', ' ']).filter(|x| !x.is_empty()) {
                if part.len() % 2 != 0 {
                    return Err(bad_action(name, format!("{part}: invalid hex")));
                }
                for i in (0..part.len()).step_by(2) {
                    let b = u8::from_str_radix(&part[i..i + 2], 16)
                        .map_err(|_| bad_action(name, format!("{part}: invalid hex")))?;
                    bytes.push(b);
                }
            }
            Some(Action::Note(bytes))
        }
        "exit" => Some(Action::Exit),
        "multipath" => Some(parse_multipath(need()?)?),
        "bundle" | "bundle_load" => Some(parse_bundle(name, need()?, opts)?),
        "learn" => Some(Action::Learn(Box::new(parse_learn(need()?)?))),
        "sample" => {
            let (mut probability, mut cs, mut dom, mut pt) = (None, 0, 0, 0);
            for kv in split_top(need()?)? {
                match kv.split_once('=') {
                    Some(("probability", v)) => probability = Some(num::<u16>(name, v)?),
                    Some(("collector_set_id", v)) => cs = num(name, v)?,
                    Some(("obs_domain_id", v)) => dom = num(name, v)?,
                    Some(("obs_point_id", v)) => pt = num(name, v)?,
                    _ => {
                        return Err(bad_action(
                            name,
                            format!("{kv}: unknown or unsupported argument"),
                        ));
                    }
                }
            }
            let probability = probability
                .filter(|p| *p != 0)
                .ok_or_else(|| bad_action(name, "probability must be 1 to 65535"))?;
            Some(Action::Sample {
                probability,
                collector_set_id: cs,
                obs_domain_id: dom,
                obs_point_id: pt,
            })
        }
        "fin_timeout" => {
            let (mut idle, mut hard) = (0, 0);
            for kv in split_top(need()?)? {
                match kv.split_once('=') {
                    Some(("idle_timeout", v)) => idle = num(name, v)?,
                    Some(("hard_timeout", v)) => hard = num(name, v)?,
                    _ => return Err(bad_action(name, format!("{kv}: unknown argument"))),
                }
            }
            Some(Action::FinTimeout { idle, hard })
        }
        "set_queue" => Some(Action::SetQueue(num(name, need()?)?)),
        "enqueue" => {
            let a = need()?;
            let (p, q) = a
                .rsplit_once([':', ','])
                .ok_or_else(|| bad_action(name, format!("{a}: expected PORT:QUEUE")))?;
            let port = opts
                .port(p.trim())
                .ok_or_else(|| bad_action(name, format!("{p}: invalid port")))?;
            Some(Action::Enqueue {
                port,
                queue: num(name, q)?,
            })
        }
        "clone" => Some(Action::Clone(parse_actions_nested(need()?, opts)?)),
        "ct_clear" => Some(Action::CtClear),
        "ct" => Some(Action::Ct(Box::new(parse_ct(arg.unwrap_or(""), opts)?))),
        _ => None,
    };
    Ok(a)
}

/// `check_pkt_larger(LEN)->DST`: the text after the name.
pub(crate) fn parse_check_pkt_larger(t: &str) -> Result<Action, TextError> {
    let name = "check_pkt_larger";
    let rest = t.trim_start_matches(name).trim();
    let (len, dst) = rest
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .ok_or_else(|| bad_action(name, format!("{t}: expected check_pkt_larger(LEN)->DST")))?;
    let dst = dst
        .trim()
        .strip_prefix("->")
        .ok_or_else(|| bad_action(name, format!("{t}: missing `->`")))?;
    let dst = parse_subfield(name, dst.trim())?;
    if dst.n_bits != 1 {
        return Err(bad_action(name, "destination must be a single bit"));
    }
    Ok(Action::CheckPktLarger {
        pkt_len: num(name, len)?,
        dst,
    })
}

/// `output:SRC[]` and `output(port=SRC[],max_len=N)` when the port is a field.
pub(crate) fn parse_output_reg(arg: &str, paren: bool) -> Result<Option<Action>, TextError> {
    let name = "output";
    if !paren {
        if !arg.contains('[') {
            return Ok(None);
        }
        return Ok(Some(Action::OutputReg {
            src: parse_subfield(name, arg.trim())?,
            max_len: u16::MAX,
        }));
    }
    let (mut port, mut max_len) = (None, None);
    for kv in split_top(arg)? {
        match kv.split_once('=') {
            Some(("port", v)) => port = Some(v.trim()),
            Some(("max_len", v)) => max_len = Some(num::<u16>(name, v)?),
            _ => return Err(bad_action(name, format!("{kv}: unknown argument"))),
        }
    }
    let port = port.ok_or_else(|| bad_action(name, "port is required"))?;
    if !port.contains('[') {
        return Ok(None);
    }
    let src = parse_subfield(name, port)?;
    Ok(Some(Action::OutputReg {
        src,
        max_len: max_len.unwrap_or(u16::MAX),
    }))
}

fn parse_controller(a: &str) -> Result<Action, TextError> {
    let name = "controller";
    let mut c = ControllerSpec::default();
    for kv in split_top(a)? {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (kv.trim(), None),
        };
        match (k, v) {
            ("max_len", Some(v)) => c.max_len = num(name, v)?,
            ("id", Some(v)) => c.controller_id = num(name, v)?,
            ("reason", Some(v)) => {
                c.reason = PacketInReason::from_name(v)
                    .ok_or_else(|| bad_action(name, format!("{v}: unknown reason")))?
            }
            ("userdata", Some(v)) => c.userdata = parse_hex_dots(name, v)?,
            ("pause", None) => c.pause = true,
            ("meter_id", Some(v)) => c.meter_id = num(name, v)?,
            _ => return Err(bad_action(name, format!("{kv}: unknown argument"))),
        }
    }
    Ok(c.into_action())
}

fn parse_hex_dots(name: &str, v: &str) -> Result<Vec<u8>, TextError> {
    v.split('.')
        .filter(|x| !x.is_empty())
        .map(|x| {
            u8::from_str_radix(x, 16).map_err(|_| bad_action(name, format!("{v}: invalid hex")))
        })
        .collect()
}

fn parse_hash_fields(name: &str, s: &str) -> Result<HashFields, TextError> {
    HashFields::from_name(s.trim()).ok_or_else(|| bad_action(name, format!("{s}: unknown fields")))
}

fn parse_multipath(a: &str) -> Result<Action, TextError> {
    let name = "multipath";
    let parts: Vec<&str> = a.splitn(6, ',').map(str::trim).collect();
    let [fields, basis, alg, n_links, arg, dst] = parts[..] else {
        return Err(bad_action(name, format!("{a}: not enough arguments")));
    };
    let algorithm = MultipathAlgorithm::ALL
        .into_iter()
        .find(|x| x.name() == alg)
        .ok_or_else(|| bad_action(name, format!("{alg}: unknown algorithm")))?;
    let n_links: u32 = num(name, n_links)?;
    if n_links == 0 || n_links > 65536 {
        return Err(bad_action(
            name,
            format!("{n_links}: n_links must be between 1 and 65536"),
        ));
    }
    let dst = parse_subfield(name, dst)?;
    if dst.n_bits < 32 && (1u64 << dst.n_bits) < u64::from(n_links) {
        return Err(bad_action(
            name,
            format!(
                "{} bits in the destination are not enough for {n_links} links",
                dst.n_bits
            ),
        ));
    }
    Ok(Action::Multipath(Box::new(Multipath {
        fields: parse_hash_fields(name, fields)?,
        basis: num(name, basis)?,
        algorithm,
        n_links,
        arg: num(name, arg)?,
        dst,
    })))
}

fn parse_bundle(name: &str, a: &str, opts: &ParseOptions<'_>) -> Result<Action, TextError> {
    let load = name == "bundle_load";
    let n_fixed = if load { 5 } else { 4 };
    let parts: Vec<&str> = a.splitn(n_fixed + 1, ',').map(str::trim).collect();
    if parts.len() != n_fixed + 1 {
        return Err(bad_action(name, format!("{a}: not enough arguments")));
    }
    let algorithm = match parts[2] {
        "active_backup" => BundleAlgorithm::ActiveBackup,
        "hrw" => BundleAlgorithm::Hrw,
        x => return Err(bad_action(name, format!("{x}: unknown algorithm"))),
    };
    if parts[3] != "ofport" {
        return Err(bad_action(
            name,
            format!("{}: unknown member type", parts[3]),
        ));
    }
    let dst = if load {
        Some(parse_subfield(name, parts[4])?)
    } else {
        None
    };
    let members_s = parts[n_fixed]
        .strip_prefix("members:")
        .or_else(|| parts[n_fixed].strip_prefix("slaves:"))
        .ok_or_else(|| bad_action(name, format!("{}: expected members:", parts[n_fixed])))?;
    let members = members_s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|p| {
            opts.port(p)
                .ok_or_else(|| bad_action(name, format!("{p}: invalid port")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Action::Bundle(Box::new(Bundle {
        fields: parse_hash_fields(name, parts[0])?,
        basis: num(name, parts[1])?,
        algorithm,
        members,
        dst,
    })))
}

fn parse_learn_src(name: &str, s: &str, dst: &SubField) -> Result<LearnSrc, TextError> {
    let s = s.trim();
    if s.contains('[') {
        let src = parse_subfield(name, s)?;
        if src.n_bits != dst.n_bits {
            return Err(bad_action(
                name,
                format!(
                    "{s}: {} bits wide but the destination is {} bits wide",
                    src.n_bits, dst.n_bits
                ),
            ));
        }
        return Ok(LearnSrc::Field(src));
    }
    let v = if dst.ofs == 0 && u32::from(dst.n_bits) == dst.field.n_bits() {
        // A whole field takes its own syntax (MAC, IP, ...).
        parse_field_value(dst.field, dst.field.name(), s)
            .map(|(v, _)| v)
            .or_else(|_| {
                parse_uint(s).ok_or_else(|| bad_action(name, format!("{s}: invalid value")))
            })?
    } else {
        parse_uint(s).ok_or_else(|| bad_action(name, format!("{s}: invalid value")))?
    };
    if dst.n_bits < 128 && v >> dst.n_bits != 0 {
        return Err(bad_action(
            name,
            format!("{s}: value does not fit in {} bits", dst.n_bits),
        ));
    }
    Ok(LearnSrc::Imm(v))
}

fn parse_learn(a: &str) -> Result<Learn, TextError> {
    let name = "learn";
    let mut l = Learn::default();
    for tok in split_top(a)? {
        let (k, v) = match tok.split_once('=') {
            Some((k, v)) if !k.contains("->") && !k.starts_with("load:") => {
                (k.trim(), Some(v.trim()))
            }
            _ => (tok, None),
        };
        match (k, v) {
            ("table", Some(v)) => {
                l.table = num(name, v)?;
                if l.table == 255 {
                    return Err(bad_action(
                        name,
                        "table id 255 not valid for `learn' action",
                    ));
                }
            }
            ("priority", Some(v)) => l.priority = num(name, v)?,
            ("idle_timeout", Some(v)) => l.idle_timeout = num(name, v)?,
            ("hard_timeout", Some(v)) => l.hard_timeout = num(name, v)?,
            ("fin_idle_timeout", Some(v)) => l.fin_idle_timeout = num(name, v)?,
            ("fin_hard_timeout", Some(v)) => l.fin_hard_timeout = num(name, v)?,
            ("cookie", Some(v)) => l.cookie = num(name, v)?,
            ("limit", Some(v)) => l.limit = num(name, v)?,
            ("result_dst", Some(v)) => {
                let sf = parse_subfield(name, v)?;
                if sf.n_bits != 1 {
                    return Err(bad_action(name, "result_dst must be a single bit"));
                }
                l.result_dst = Some(sf);
                l.flags |= LEARN_WRITE_RESULT;
            }
            ("send_flow_rem", None) => l.flags |= LEARN_SEND_FLOW_REM,
            ("delete_learned", None) => l.flags |= LEARN_DELETE_LEARNED,
            _ => l.specs.push(parse_learn_spec(tok)?),
        }
    }
    Ok(l)
}

fn parse_learn_spec(tok: &str) -> Result<LearnSpec, TextError> {
    let name = "learn";
    if let Some(rest) = tok.strip_prefix("load:") {
        let (src, dst) = rest
            .split_once("->")
            .ok_or_else(|| bad_action(name, format!("{tok}: missing `->`")))?;
        let dst = parse_subfield(name, dst.trim())?;
        let src = parse_learn_src(name, src, &dst)?;
        return Ok(LearnSpec::Load { src, dst });
    }
    if let Some(rest) = tok.strip_prefix("output:") {
        return Ok(LearnSpec::Output {
            src: parse_subfield(name, rest.trim())?,
        });
    }
    match tok.split_once('=') {
        Some((d, s)) => {
            let d = d.trim();
            let dst = if d.contains('[') {
                parse_subfield(name, d)?
            } else {
                let f = Field::from_name(d)
                    .ok_or_else(|| bad_action(name, format!("{d}: unknown field")))?;
                SubField {
                    field: f,
                    ofs: 0,
                    n_bits: f.n_bits() as u8,
                }
            };
            let src = parse_learn_src(name, s, &dst)?;
            Ok(LearnSpec::Match { src, dst })
        }
        None => {
            let dst = parse_subfield(name, tok.trim())?;
            Ok(LearnSpec::Match {
                src: LearnSrc::Field(dst),
                dst,
            })
        }
    }
}

fn parse_ct(a: &str, opts: &ParseOptions<'_>) -> Result<Ct, TextError> {
    let name = "ct";
    let mut ct = Ct {
        flags: 0,
        zone_src: None,
        zone_imm: 0,
        table: None,
        alg: 0,
        actions: Vec::new(),
    };
    for tok in split_top(a)? {
        let (k, v) = match tok.find(['=', '(']) {
            Some(i) if tok.as_bytes()[i] == b'=' => (tok[..i].trim(), Some(tok[i + 1..].trim())),
            Some(i) => (
                tok[..i].trim(),
                Some(
                    tok[i + 1..]
                        .strip_suffix(')')
                        .ok_or_else(|| TextError::Unbalanced(tok.to_string()))?,
                ),
            ),
            None => (tok, None),
        };
        match (k, v) {
            ("commit", None) => ct.flags |= CT_COMMIT,
            ("force", None) => ct.flags |= CT_FORCE,
            ("table", Some(v)) => {
                let t: u8 = num(name, v)?;
                if t == 255 {
                    return Err(bad_action(name, "table 255 is not valid"));
                }
                ct.table = Some(t);
            }
            ("zone", Some(v)) => {
                if v.contains('[') {
                    let sf = parse_subfield(name, v)?;
                    if sf.n_bits != 16 {
                        return Err(bad_action(name, "zone subfield must be 16 bits"));
                    }
                    ct.zone_src = Some(sf);
                } else {
                    ct.zone_imm = num(name, v)?;
                }
            }
            ("alg", Some(v)) => {
                ct.alg = match v {
                    "ftp" => 21,
                    "tftp" => 69,
                    other => num(name, other)?,
                }
            }
            ("nat", v) => ct.actions.push(Action::Nat(Box::new(parse_nat(v)?))),
            ("exec", Some(v)) => {
                let opts = &ParseOptions {
                    in_ct_exec: true,
                    ..*opts
                };
                let mut inner = Vec::new();
                for t in split_top(v)? {
                    if t == "nat" || t.starts_with("nat(") {
                        let args = t.strip_prefix("nat(").and_then(|x| x.strip_suffix(')'));
                        inner.push(Action::Nat(Box::new(parse_nat(args)?)));
                    } else {
                        inner.extend(parse_actions_nested(t, opts)?);
                    }
                }
                // OVS: exec may only set the connection's ct_mark/ct_label.
                let ct_field = |f: Field| f.name().starts_with("ct_");
                if let Some(bad) = inner.iter().find(|a| match a {
                    Action::SetField { field, .. } => !ct_field(*field),
                    Action::Load { dst, .. } | Action::Move { dst, .. } => !ct_field(dst.field),
                    Action::Nat(_) => false,
                    _ => true,
                }) {
                    return Err(bad_action(
                        name,
                        format!(
                            "{}: ct action doesn't support nested action or modification of that field",
                            crate::text::format_action(bad)
                        ),
                    ));
                }
                ct.actions.extend(inner);
            }
            _ => return Err(bad_action(name, format!("{tok}: unknown argument"))),
        }
    }
    if ct.flags & CT_COMMIT == 0
        && ct
            .actions
            .iter()
            .any(|a| !matches!(a, Action::Nat(n) if n.flags & (NAT_SRC | NAT_DST) == 0))
    {
        return Err(bad_action(
            name,
            "CT action requires commit flag if actions other than NAT without arguments are specified",
        ));
    }
    Ok(ct)
}

fn parse_nat(arg: Option<&str>) -> Result<Nat, TextError> {
    let name = "nat";
    let mut nat = Nat::default();
    let Some(arg) = arg else {
        return Ok(nat);
    };
    for tok in split_top(arg)? {
        match tok.split_once('=') {
            Some((dir @ ("src" | "dst"), v)) => {
                if nat.flags & (NAT_SRC | NAT_DST) != 0 {
                    return Err(bad_action(name, "only one of src or dst may be given"));
                }
                nat.flags |= if dir == "src" { NAT_SRC } else { NAT_DST };
                parse_nat_range(v.trim(), &mut nat)?;
            }
            None if tok == "src" || tok == "dst" => {
                // `nat(src)`: a direction with no range (OVN's ct_commit).
                if nat.flags & (NAT_SRC | NAT_DST) != 0 {
                    return Err(bad_action(name, "only one of src or dst may be given"));
                }
                nat.flags |= if tok == "src" { NAT_SRC } else { NAT_DST };
            }
            None if tok == "persistent" => nat.flags |= NAT_PERSISTENT,
            None if tok == "hash" => nat.flags |= NAT_PROTO_HASH,
            None if tok == "random" => nat.flags |= NAT_PROTO_RANDOM,
            _ => return Err(bad_action(name, format!("{tok}: unknown argument"))),
        }
    }
    if nat.flags & NAT_PROTO_HASH != 0 && nat.flags & NAT_PROTO_RANDOM != 0 {
        return Err(bad_action(name, "hash and random are mutually exclusive"));
    }
    Ok(nat)
}

fn parse_nat_range(v: &str, nat: &mut Nat) -> Result<(), TextError> {
    let name = "nat";
    let badv = || bad_action(name, format!("{v}: invalid address range"));
    // Split off the port range: after `]` for IPv6, after the last `:` for IPv4.
    let (addrs, ports) = if v.starts_with('[') {
        // [a]-[b]:p-q or [a]:p
        let last = v.rfind(']').ok_or_else(badv)?;
        let (a, rest) = v.split_at(last + 1);
        (a, rest.strip_prefix(':'))
    } else if v.matches(':').count() > 1 {
        (v, None) // bare IPv6, no ports
    } else {
        match v.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (v, None),
        }
    };
    let (amin, amax) = match addrs.split_once("]-[") {
        Some((a, b)) => (a.trim_start_matches('['), Some(b.trim_end_matches(']'))),
        None => {
            let a = addrs.trim_start_matches('[').trim_end_matches(']');
            if a.contains(':') {
                (a, None)
            } else {
                match a.split_once('-') {
                    Some((x, y)) => (x, Some(y)),
                    None => (a, None),
                }
            }
        }
    };
    if let Ok(min) = amin.parse::<Ipv4Addr>() {
        let max = amax
            .map(|m| m.parse::<Ipv4Addr>().map_err(|_| badv()))
            .transpose()?;
        if max.is_some_and(|m| u32::from(m) < u32::from(min)) {
            return Err(badv());
        }
        nat.range = Some(NatRange::V4 {
            min: min.into(),
            max: max.map(u32::from),
        });
    } else {
        let min: Ipv6Addr = amin.parse().map_err(|_| badv())?;
        let max = amax
            .map(|m| m.parse::<Ipv6Addr>().map_err(|_| badv()))
            .transpose()?;
        nat.range = Some(NatRange::V6 {
            min: min.into(),
            max: max.map(u128::from),
        });
    }
    if let Some(p) = ports {
        let (a, b) = match p.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (p, None),
        };
        nat.proto_min = Some(num(name, a)?);
        nat.proto_max = b.map(|b| num(name, b)).transpose()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Printing (called from `text::format_action`)

fn hex_dots(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Prints the actions of this module as ovs-ofctl does; `None` for others.
pub(crate) fn format_nx_action(a: &Action) -> Option<String> {
    Some(match a {
        Action::ControllerEx(c) => {
            if c.is_plain() {
                return Some(format!("CONTROLLER:{}", c.max_len));
            }
            let mut p = Vec::new();
            if c.reason != PacketInReason::Action {
                p.push(format!("reason={}", c.reason.name()));
            }
            if c.max_len != u16::MAX {
                p.push(format!("max_len={}", c.max_len));
            }
            if c.controller_id != 0 {
                p.push(format!("id={}", c.controller_id));
            }
            if !c.userdata.is_empty() {
                p.push(format!("userdata={}", hex_dots(&c.userdata)));
            }
            if c.pause {
                p.push("pause".into());
            }
            if c.meter_id != 0 {
                p.push(format!("meter_id={}", c.meter_id));
            }
            format!("controller({})", p.join(","))
        }
        Action::DecTtlIds(ids) => format!(
            "dec_ttl({})",
            ids.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
        ),
        Action::StackPush(sf) => format!("push:{}", format_subfield(sf)),
        Action::StackPop(sf) => format!("pop:{}", format_subfield(sf)),
        Action::OutputReg { src, max_len } => {
            if *max_len == u16::MAX {
                format!("output:{}", format_subfield(src))
            } else {
                format!("output(port={},max_len={max_len})", format_subfield(src))
            }
        }
        Action::Note(b) => format!("note:{}", hex_dots(b)),
        Action::Exit => "exit".into(),
        Action::Multipath(m) => format!(
            "multipath({},{},{},{},{},{})",
            m.fields.name(),
            m.basis,
            m.algorithm.name(),
            m.n_links,
            m.arg,
            format_subfield(&m.dst)
        ),
        Action::Bundle(b) => {
            let members = b
                .members
                .iter()
                .map(|p| format_port(*p))
                .collect::<Vec<_>>()
                .join(",");
            match &b.dst {
                None => format!(
                    "bundle({},{},{},ofport,members:{members})",
                    b.fields.name(),
                    b.basis,
                    b.algorithm.name()
                ),
                Some(d) => format!(
                    "bundle_load({},{},{},ofport,{},members:{members})",
                    b.fields.name(),
                    b.basis,
                    b.algorithm.name(),
                    format_subfield(d)
                ),
            }
        }
        Action::Learn(l) => format_learn(l),
        Action::Sample {
            probability,
            collector_set_id,
            obs_domain_id,
            obs_point_id,
        } => format!(
            "sample(probability={probability},collector_set_id={collector_set_id},obs_domain_id={obs_domain_id},obs_point_id={obs_point_id})"
        ),
        Action::FinTimeout { idle, hard } => {
            let mut p = Vec::new();
            if *idle != 0 {
                p.push(format!("idle_timeout={idle}"));
            }
            if *hard != 0 {
                p.push(format!("hard_timeout={hard}"));
            }
            format!("fin_timeout({})", p.join(","))
        }
        Action::SetQueue(q) => format!("set_queue:{q}"),
        Action::Enqueue { port, queue } => format!("enqueue:{}:{queue}", format_port(*port)),
        Action::Clone(inner) => {
            if inner.is_empty() {
                "clone()".into()
            } else {
                format!("clone({})", format_actions(inner))
            }
        }
        Action::CtClear => "ct_clear".into(),
        Action::CheckPktLarger { pkt_len, dst } => {
            format!("check_pkt_larger({pkt_len})->{}", format_subfield(dst))
        }
        Action::Ct(ct) => format_ct(ct),
        Action::Nat(n) => format_nat(n),
        _ => return None,
    })
}

fn format_subvalue(v: u128) -> String {
    format!("{v:#x}")
}

fn format_learn(l: &Learn) -> String {
    let mut s = format!("learn(table={}", l.table);
    if l.idle_timeout != 0 {
        let _ = write!(s, ",idle_timeout={}", l.idle_timeout);
    }
    if l.hard_timeout != 0 {
        let _ = write!(s, ",hard_timeout={}", l.hard_timeout);
    }
    if l.fin_idle_timeout != 0 {
        let _ = write!(s, ",fin_idle_timeout={}", l.fin_idle_timeout);
    }
    if l.fin_hard_timeout != 0 {
        let _ = write!(s, ",fin_hard_timeout={}", l.fin_hard_timeout);
    }
    if l.priority != 0x8000 {
        let _ = write!(s, ",priority={}", l.priority);
    }
    if l.flags & LEARN_SEND_FLOW_REM != 0 {
        s.push_str(",send_flow_rem");
    }
    if l.flags & LEARN_DELETE_LEARNED != 0 {
        s.push_str(",delete_learned");
    }
    if l.cookie != 0 {
        let _ = write!(s, ",cookie={:#x}", l.cookie);
    }
    if l.limit != 0 {
        let _ = write!(s, ",limit={}", l.limit);
    }
    if let Some(r) = &l.result_dst {
        let _ = write!(s, ",result_dst={}", format_subfield(r));
    }
    for spec in &l.specs {
        s.push(',');
        match spec {
            LearnSpec::Match {
                src: LearnSrc::Imm(v),
                dst,
            } => {
                if dst.ofs == 0 && u32::from(dst.n_bits) == dst.field.n_bits() {
                    let _ = write!(
                        s,
                        "{}={}",
                        dst.field.oxm_name(),
                        format_field_value(dst.field, *v, dst.field.max_value())
                    );
                } else {
                    let _ = write!(s, "{}={}", format_subfield(dst), format_subvalue(*v));
                }
            }
            LearnSpec::Match {
                src: LearnSrc::Field(src),
                dst,
            } => {
                s.push_str(&format_subfield(dst));
                if src.field != dst.field || src.ofs != dst.ofs {
                    let _ = write!(s, "={}", format_subfield(src));
                }
            }
            LearnSpec::Load {
                src: LearnSrc::Imm(v),
                dst,
            } => {
                let _ = write!(s, "load:{}->{}", format_subvalue(*v), format_subfield(dst));
            }
            LearnSpec::Load {
                src: LearnSrc::Field(src),
                dst,
            } => {
                let _ = write!(s, "load:{}->{}", format_subfield(src), format_subfield(dst));
            }
            LearnSpec::Output { src } => {
                let _ = write!(s, "output:{}", format_subfield(src));
            }
        }
    }
    s.push(')');
    s
}

fn format_ct(ct: &Ct) -> String {
    let mut p: Vec<String> = Vec::new();
    if ct.flags & CT_COMMIT != 0 {
        p.push("commit".into());
    }
    if ct.flags & CT_FORCE != 0 {
        p.push("force".into());
    }
    if let Some(t) = ct.table {
        p.push(format!("table={t}"));
    }
    if let Some(z) = &ct.zone_src {
        p.push(format!("zone={}", format_subfield(z)));
    } else if ct.zone_imm != 0 {
        p.push(format!("zone={}", ct.zone_imm));
    }
    let mut rest: &[Action] = &ct.actions;
    if let Some((Action::Nat(n), tail)) = rest.split_first() {
        p.push(format_nat(n));
        rest = tail;
    }
    if !rest.is_empty() {
        p.push(format!("exec({})", format_actions(rest)));
    }
    match ct.alg {
        0 => {}
        21 => p.push("alg=ftp".into()),
        69 => p.push("alg=tftp".into()),
        n => p.push(format!("alg={n}")),
    }
    format!("ct({})", p.join(","))
}

fn format_nat(n: &Nat) -> String {
    if n.flags & (NAT_SRC | NAT_DST) == 0 {
        return "nat".into();
    }
    let port = n.proto_min.unwrap_or(0);
    let mut s = format!(
        "nat({}{}",
        if n.flags & NAT_SRC != 0 { "src" } else { "dst" },
        // `nat(src)`: the direction alone, as OVS prints it.
        if n.range.is_none() && port == 0 {
            ""
        } else {
            "="
        }
    );
    match n.range {
        Some(NatRange::V4 { min, max }) => {
            let _ = write!(s, "{}", Ipv4Addr::from(min));
            if let Some(m) = max
                && m != 0
                && m != min
            {
                let _ = write!(s, "-{}", Ipv4Addr::from(m));
            }
        }
        Some(NatRange::V6 { min, max }) => {
            let fmt = |a: u128| {
                if port != 0 {
                    format!("[{}]", Ipv6Addr::from(a))
                } else {
                    Ipv6Addr::from(a).to_string()
                }
            };
            s.push_str(&fmt(min));
            if let Some(m) = max
                && m != 0
                && m != min
            {
                let _ = write!(s, "-{}", fmt(m));
            }
        }
        None => {}
    }
    if port != 0 {
        let _ = write!(s, ":{port}");
        if let Some(m) = n.proto_max
            && m != 0
            && m != port
        {
            let _ = write!(s, "-{m}");
        }
    }
    if n.flags & NAT_PERSISTENT != 0 {
        s.push_str(",persistent");
    }
    if n.flags & NAT_PROTO_HASH != 0 {
        s.push_str(",hash");
    }
    if n.flags & NAT_PROTO_RANDOM != 0 {
        s.push_str(",random");
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use crate::text::{format_actions, parse_actions};

    /// Inputs and the way ovs-ofctl 3.1 (`ovs-ofctl parse-flow`) prints them.
    const OVS_PRINTS: &[(&str, &str)] = &[
        (
            "learn(table=10,idle_timeout=60,hard_timeout=100,fin_idle_timeout=5,fin_hard_timeout=6,priority=5,cookie=0x5,delete_learned,limit=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],eth_type=0x800,reg1[0..3]=5,load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],load:0x5->reg2[],output:NXM_OF_IN_PORT[])",
            "learn(table=10,idle_timeout=60,hard_timeout=100,fin_idle_timeout=5,fin_hard_timeout=6,priority=5,delete_learned,cookie=0x5,limit=10,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],eth_type=0x800,NXM_NX_REG1[0..3]=0x5,load:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],load:0x5->NXM_NX_REG2[],output:NXM_OF_IN_PORT[])",
        ),
        (
            "learn(limit=5,result_dst=reg0[3],table=2,eth_src=00:00:00:00:00:01)",
            "learn(table=2,limit=5,result_dst=NXM_NX_REG0[3],eth_src=00:00:00:00:00:01)",
        ),
        (
            "clone(load:0x1->reg0[],output:1)",
            "clone(load:0x1->NXM_NX_REG0[],output:1)",
        ),
        ("ct_clear", "ct_clear"),
        (
            "check_pkt_larger(200)->reg0[0]",
            "check_pkt_larger(200)->NXM_NX_REG0[0]",
        ),
        ("dec_ttl(1,2)", "dec_ttl(1,2)"),
        ("dec_ttl", "dec_ttl"),
        ("push:reg0[0..15]", "push:NXM_NX_REG0[0..15]"),
        ("pop:NXM_NX_REG1[]", "pop:NXM_NX_REG1[]"),
        ("output:NXM_NX_REG0[]", "output:NXM_NX_REG0[]"),
        (
            "output(port=reg0[0..15],max_len=100)",
            "output(port=NXM_NX_REG0[0..15],max_len=100)",
        ),
        ("note:01.02.ab", "note:01.02.ab"),
        ("exit", "exit"),
        (
            "multipath(eth_src,50,hrw,12,0,reg0[0..3])",
            "multipath(eth_src,50,hrw,12,0,NXM_NX_REG0[0..3])",
        ),
        (
            "multipath(symmetric_l3l4+udp,0,modulo_n,1024,0,reg0[0..9])",
            "multipath(symmetric_l3l4+udp,0,modulo_n,1024,0,NXM_NX_REG0[0..9])",
        ),
        (
            "bundle(eth_src,0,active_backup,ofport,members:1,2)",
            "bundle(eth_src,0,active_backup,ofport,members:1,2)",
        ),
        (
            "bundle_load(eth_src,0,hrw,ofport,reg0[],members:4,8)",
            "bundle_load(eth_src,0,hrw,ofport,NXM_NX_REG0[],members:4,8)",
        ),
        (
            "bundle(symmetric_l4,60,hrw,ofport,members:)",
            "bundle(symmetric_l4,60,hrw,ofport,members:)",
        ),
        ("set_queue:5", "set_queue:5"),
        ("enqueue:1:2", "enqueue:1:2"),
        (
            "controller(reason=no_match,max_len=100,id=3,userdata=01.02,pause,meter_id=5)",
            "controller(reason=no_match,max_len=100,id=3,userdata=01.02,pause,meter_id=5)",
        ),
        (
            "controller(userdata=00.00.00.0c.00.00.00.00,pause)",
            "controller(userdata=00.00.00.0c.00.00.00.00,pause)",
        ),
        (
            "controller(reason=invalid_ttl)",
            "controller(reason=invalid_ttl)",
        ),
        ("controller:100", "CONTROLLER:100"),
        (
            "sample(probability=100,collector_set_id=1,obs_domain_id=2,obs_point_id=3)",
            "sample(probability=100,collector_set_id=1,obs_domain_id=2,obs_point_id=3)",
        ),
        (
            "sample(probability=65535)",
            "sample(probability=65535,collector_set_id=0,obs_domain_id=0,obs_point_id=0)",
        ),
        ("controller(max_len=100)", "CONTROLLER:100"),
        (
            "ct(commit,zone=5,table=3,alg=ftp,nat(src=10.0.0.1-10.0.0.5:100-200,random,persistent))",
            "ct(commit,table=3,zone=5,nat(src=10.0.0.1-10.0.0.5:100-200,persistent,random),alg=ftp)",
        ),
        (
            "ct(commit,exec(nat(src=10.0.0.1)))",
            "ct(commit,nat(src=10.0.0.1))",
        ),
        (
            "ct(zone=NXM_NX_REG0[0..15],nat)",
            "ct(zone=NXM_NX_REG0[0..15],nat)",
        ),
        (
            "ct(commit,force,nat(dst=[fe80::1]:80,hash))",
            "ct(commit,force,nat(dst=[fe80::1]:80,hash))",
        ),
        ("ct(table=3,zone=1,alg=tftp)", "ct(table=3,zone=1,alg=tftp)"),
        (
            "ct(commit,nat(src=10.0.0.1:5))",
            "ct(commit,nat(src=10.0.0.1:5))",
        ),
        (
            "ct(commit,zone=NXM_NX_REG13[0..15],nat(src))",
            "ct(commit,zone=NXM_NX_REG13[0..15],nat(src))",
        ),
        (
            "ct(commit,nat(src=10.0.0.1-10.0.0.1))",
            "ct(commit,nat(src=10.0.0.1))",
        ),
        (
            "fin_timeout(idle_timeout=5,hard_timeout=6)",
            "fin_timeout(idle_timeout=5,hard_timeout=6)",
        ),
        ("resubmit(,3,ct)", "resubmit(,3,ct)"),
        ("resubmit(1,3,ct)", "resubmit(1,3,ct)"),
    ];

    #[test]
    fn nicira_actions_print_as_ovs_ofctl_does_and_reparse_to_the_same_action() {
        for (input, want) in OVS_PRINTS {
            let a = parse_actions(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let got = format_actions(&a);
            assert_eq!(&got, want, "printing {input}");
            let again = parse_actions(&got).unwrap_or_else(|e| panic!("{got}: {e}"));
            assert_eq!(format_actions(&again), got, "reparsing {got}");
        }
    }

    #[test]
    fn bad_nicira_actions_are_refused_with_the_offending_part() {
        for (input, needle) in [
            ("ct(nat(src=10.0.0.1))", "requires commit"),
            ("learn(table=255)", "255"),
            ("multipath(eth_src,50,hrw,12,0,reg0[0..2])", "not enough"),
            ("check_pkt_larger(200)->reg0[0..1]", "single bit"),
            ("bundle(eth_src,0,foo,ofport,members:1)", "foo"),
            ("ct(exec(output:1),commit)", "nested"),
            ("ct(commit,exec(load:1->reg1[]))", "nested"),
            ("clone(goto_table:1)", "instructions"),
            ("nat(src=10.0.0.1)", "nat"),
            ("controller(bogus=1)", "bogus"),
        ] {
            let e = parse_actions(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }
}
