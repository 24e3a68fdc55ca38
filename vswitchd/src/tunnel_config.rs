//! Tunnel Interfaces (`type=vxlan|geneve|gre`) and their options, as OVS
//! configures them: `remote_ip` (an address or `flow`), `local_ip`, `key`
//! (or `in_key`/`out_key`; a number or `flow`), `dst_port`, `csum`, `tos`,
//! `ttl`, `df_default`, `packet_type`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::IpAddr;

use wire::tunnel::TunnelProto;

/// An address option: fixed or taken from the flow (`tun_src`/`tun_dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Ip(IpAddr),
    Flow,
}

/// A key option: fixed or taken from the flow (`tun_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Fixed(u64),
    Flow,
}

/// TOS or TTL: fixed or copied from the inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inherit {
    Fixed(u8),
    Inherit,
}

/// What the tunnel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Ethernet frames (the default).
    LegacyL2,
    /// IP packets without Ethernet (GRE only).
    LegacyL3,
    /// Either, by the packet's type (GRE only).
    Ptap,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    pub proto: TunnelProto,
    pub remote: Endpoint,
    pub local: Option<Endpoint>,
    /// Key a received packet must carry (`None`: GRE without key).
    pub in_key: Option<Key>,
    /// Key sent (`None`: GRE without key).
    pub out_key: Option<Key>,
    /// UDP destination port (0 for GRE).
    pub dst_port: u16,
    pub csum: bool,
    pub tos: Inherit,
    pub ttl: Inherit,
    pub df_default: bool,
    pub packet_type: PacketType,
}

/// Options every tunnel type knows.
const KNOWN: &[&str] = &[
    "remote_ip",
    "local_ip",
    "key",
    "in_key",
    "out_key",
    "dst_port",
    "csum",
    "tos",
    "ttl",
    "df_default",
    "packet_type",
];

/// Whether `kind` is a tunnel Interface type.
pub fn is_tunnel(kind: &str) -> bool {
    kind.parse::<TunnelProto>().is_ok()
}

fn parse_bool(name: &str, opt: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "{name}: options:{opt} must be true or false, not \"{v}\""
        )),
    }
}

fn parse_num(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

impl TunnelConfig {
    /// Parses and validates the options of Interface `name` of tunnel type
    /// `kind`. Returns the config and warnings (unknown options, which OVS
    /// also only warns about), or an error for Interface.error.
    pub fn parse(
        name: &str,
        kind: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(TunnelConfig, Vec<String>), String> {
        let proto: TunnelProto = kind
            .parse()
            .map_err(|_| format!("{name}: \"{kind}\" is not a tunnel type"))?;
        let endpoint =
            |opt: &str| -> Result<Option<Endpoint>, String> {
                match options.get(opt).map(String::as_str) {
                None => Ok(None),
                Some("flow") => Ok(Some(Endpoint::Flow)),
                Some(v) => v.parse::<IpAddr>().map(|a| Some(Endpoint::Ip(a))).map_err(|_| {
                    format!("{name}: options:{opt} \"{v}\" is neither an IP address nor \"flow\"")
                }),
            }
            };
        let remote = endpoint("remote_ip")?.ok_or_else(|| {
            format!("{name}: a {proto} tunnel needs options:remote_ip (an IP address or \"flow\")")
        })?;
        if let Endpoint::Ip(ip) = remote
            && (ip.is_unspecified() || ip.is_multicast())
        {
            return Err(format!(
                "{name}: options:remote_ip {ip} is not a unicast address"
            ));
        }
        let local = endpoint("local_ip")?;
        if let (Endpoint::Ip(r), Some(Endpoint::Ip(l))) = (remote, local)
            && r.is_ipv4() != l.is_ipv4()
        {
            return Err(format!(
                "{name}: options:remote_ip {r} and options:local_ip {l} are of different address families"
            ));
        }
        if local == Some(Endpoint::Flow) && remote != Endpoint::Flow {
            return Err(format!(
                "{name}: options:local_ip=flow needs options:remote_ip=flow"
            ));
        }
        let key = |opt: &str| -> Result<Option<Key>, String> {
            match options.get(opt).map(String::as_str) {
                None => Ok(None),
                Some("flow") => Ok(Some(Key::Flow)),
                Some(v) => {
                    let k = parse_num(v).ok_or_else(|| {
                        format!("{name}: options:{opt} \"{v}\" is neither a number nor \"flow\"")
                    })?;
                    if k > proto.max_key() {
                        return Err(format!(
                            "{name}: options:{opt} {k} does not fit a {proto} key (maximum {})",
                            proto.max_key()
                        ));
                    }
                    Ok(Some(Key::Fixed(k)))
                }
            }
        };
        let both = key("key")?;
        let in_key = key("in_key")?.or(both);
        let out_key = key("out_key")?.or(both);
        // VXLAN and Geneve always carry a VNI (0 when not configured).
        let (in_key, out_key) = match proto {
            TunnelProto::Gre => (in_key, out_key),
            _ => (
                Some(in_key.unwrap_or(Key::Fixed(0))),
                Some(out_key.unwrap_or(Key::Fixed(0))),
            ),
        };
        let dst_port = match (proto.default_port(), options.get("dst_port")) {
            (None, Some(_)) => {
                return Err(format!("{name}: options:dst_port does not apply to gre"));
            }
            (None, None) => 0,
            (Some(d), None) => d,
            (Some(_), Some(v)) => v.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| {
                format!("{name}: options:dst_port \"{v}\" is not a port number (1-65535)")
            })?,
        };
        let csum = match options.get("csum") {
            Some(v) => parse_bool(name, "csum", v)?,
            None => false,
        };
        let df_default = match options.get("df_default") {
            Some(v) => parse_bool(name, "df_default", v)?,
            None => true,
        };
        let inherit = |opt: &str, default: u8, min: u8| -> Result<Inherit, String> {
            match options.get(opt).map(String::as_str) {
                None => Ok(Inherit::Fixed(default)),
                Some("inherit") => Ok(Inherit::Inherit),
                Some(v) => parse_num(v)
                    .and_then(|n| u8::try_from(n).ok())
                    .filter(|&n| n >= min)
                    .map(Inherit::Fixed)
                    .ok_or_else(|| {
                        format!("{name}: options:{opt} \"{v}\" is neither a number ({min}-255) nor \"inherit\"")
                    }),
            }
        };
        let tos = inherit("tos", 0, 0)?;
        let ttl = inherit("ttl", 64, 1)?;
        let packet_type = match (options.get("packet_type").map(String::as_str), proto) {
            (None | Some("legacy_l2"), _) => PacketType::LegacyL2,
            (Some("legacy_l3"), TunnelProto::Gre) => PacketType::LegacyL3,
            (Some("ptap"), TunnelProto::Gre) => PacketType::Ptap,
            (Some(v), _) => {
                return Err(format!(
                    "{name}: options:packet_type \"{v}\" is not supported on a {proto} tunnel"
                ));
            }
        };
        let warnings = options
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .map(|k| format!("{name}: unknown {proto} option \"{k}\" ignored"))
            .collect();
        Ok((
            TunnelConfig {
                proto,
                remote,
                local,
                in_key,
                out_key,
                dst_port,
                csum,
                tos,
                ttl,
                df_default,
                packet_type,
            },
            warnings,
        ))
    }

    /// The port's description in `dpif/show`: `key=123, remote_ip=10.0.0.2`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let sep = |s: &mut String| {
            if !s.is_empty() {
                s.push_str(", ");
            }
        };
        if let Some(p) = self.proto.default_port()
            && p != self.dst_port
        {
            let _ = write!(s, "dst_port={}", self.dst_port);
        }
        match (self.in_key, self.out_key) {
            (Some(Key::Flow), Some(Key::Flow)) => {
                sep(&mut s);
                s.push_str("key=flow");
            }
            (Some(Key::Fixed(a)), Some(Key::Fixed(b))) if a == b && a != 0 => {
                sep(&mut s);
                let _ = write!(s, "key={a}");
            }
            _ => {}
        }
        if let Some(l) = self.local {
            sep(&mut s);
            match l {
                Endpoint::Ip(ip) => {
                    let _ = write!(s, "local_ip={ip}");
                }
                Endpoint::Flow => s.push_str("local_ip=flow"),
            }
        }
        sep(&mut s);
        match self.remote {
            Endpoint::Ip(ip) => {
                let _ = write!(s, "remote_ip={ip}");
            }
            Endpoint::Flow => s.push_str("remote_ip=flow"),
        }
        if self.csum {
            s.push_str(", csum=true");
        }
        s
    }

    /// The outer header's spec for a packet sent from `local` (a MAC and
    /// an IP) to `remote` via `next_hop_mac`: the port's key, or `flow_key`
    /// for `key=flow`; TOS/TTL of the inner packet where they are
    /// inherited; `inner_ethertype` for an L3 payload.
    #[allow(clippy::too_many_arguments)]
    pub fn encap_spec<'a>(
        &self,
        eth_src: wire::MacAddr,
        next_hop_mac: wire::MacAddr,
        local: IpAddr,
        remote: IpAddr,
        flow_key: Option<u64>,
        inner_tos: u8,
        inner_ttl: u8,
        inner_ethertype: u16,
        geneve_options: &'a [u8],
    ) -> wire::tunnel::EncapSpec<'a> {
        let key = match self.out_key {
            Some(Key::Fixed(k)) => Some(k),
            Some(Key::Flow) => flow_key,
            None => None,
        };
        let pick = |i: Inherit, inner: u8| match i {
            Inherit::Fixed(v) => v,
            Inherit::Inherit => inner,
        };
        wire::tunnel::EncapSpec {
            proto: self.proto,
            eth_src,
            eth_dst: next_hop_mac,
            ip_src: local,
            ip_dst: remote,
            ttl: pick(self.ttl, inner_ttl),
            tos: pick(self.tos, inner_tos),
            df: self.df_default,
            csum: self.csum,
            key,
            dst_port: self.dst_port,
            gbp: None,
            geneve_options,
            oam: false,
            inner_protocol: match self.packet_type {
                PacketType::LegacyL2 => wire::geneve::PROTO_ETHERNET,
                PacketType::LegacyL3 | PacketType::Ptap => inner_ethertype,
            },
        }
    }

    /// The datapath's name of the shared receive port (`tnl/ports/show`).
    pub fn listener_name(&self) -> String {
        match self.proto {
            TunnelProto::Vxlan => format!("vxlan_sys_{}", self.dst_port),
            TunnelProto::Geneve => format!("genev_sys_{}", self.dst_port),
            TunnelProto::Gre => "gre_sys".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(kind: &str, kv: &[(&str, &str)]) -> Result<TunnelConfig, String> {
        TunnelConfig::parse("t0", kind, &opts(kv)).map(|(c, _)| c)
    }

    #[test]
    fn per_remote_vxlan_port_takes_defaults_like_ovs() {
        let c = parse("vxlan", &[("remote_ip", "10.99.0.2"), ("key", "123")]).unwrap();
        assert_eq!(c.remote, Endpoint::Ip("10.99.0.2".parse().unwrap()));
        assert_eq!(c.in_key, Some(Key::Fixed(123)));
        assert_eq!(c.dst_port, 4789);
        assert_eq!(c.ttl, Inherit::Fixed(64));
        assert!(c.df_default && !c.csum);
        assert_eq!(c.describe(), "key=123, remote_ip=10.99.0.2");
        assert_eq!(c.listener_name(), "vxlan_sys_4789");
        let nokey = parse("vxlan", &[("remote_ip", "10.99.0.2")]).unwrap();
        assert_eq!(nokey.in_key, Some(Key::Fixed(0)));
    }

    #[test]
    fn flow_based_geneve_port_and_ovn_style_options_are_accepted() {
        let c = parse(
            "geneve",
            &[
                ("remote_ip", "flow"),
                ("key", "flow"),
                ("csum", "true"),
                ("dst_port", "6082"),
            ],
        )
        .unwrap();
        assert_eq!(c.remote, Endpoint::Flow);
        assert_eq!(c.in_key, Some(Key::Flow));
        assert_eq!(c.listener_name(), "genev_sys_6082");
        assert_eq!(
            c.describe(),
            "dst_port=6082, key=flow, remote_ip=flow, csum=true"
        );
    }

    #[test]
    fn gre_over_ipv6_with_separate_keys_and_l3_payload() {
        let c = parse(
            "gre",
            &[
                ("remote_ip", "fd00::2"),
                ("local_ip", "fd00::1"),
                ("in_key", "0x10"),
                ("out_key", "flow"),
                ("packet_type", "legacy_l3"),
                ("tos", "inherit"),
                ("ttl", "0x9"),
                ("df_default", "false"),
            ],
        )
        .unwrap();
        assert_eq!(c.in_key, Some(Key::Fixed(16)));
        assert_eq!(c.out_key, Some(Key::Flow));
        assert_eq!(c.packet_type, PacketType::LegacyL3);
        assert_eq!(c.tos, Inherit::Inherit);
        assert_eq!(c.ttl, Inherit::Fixed(9));
        assert!(!c.df_default);
        assert_eq!(
            parse("gre", &[("remote_ip", "10.0.0.2")]).unwrap().in_key,
            None
        );
    }

    #[test]
    fn encap_spec_takes_the_port_key_or_the_flow_key_and_inherits_tos_ttl() {
        let mac = wire::MacAddr([2, 0, 0, 0, 0, 1]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = parse(
            "geneve",
            &[
                ("remote_ip", "flow"),
                ("key", "flow"),
                ("tos", "inherit"),
                ("ttl", "inherit"),
            ],
        )
        .unwrap();
        let s = c.encap_spec(
            mac,
            mac,
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            Some(9),
            0x28,
            17,
            0x0800,
            &[],
        );
        assert_eq!((s.key, s.tos, s.ttl, s.df), (Some(9), 0x28, 17, true));
        assert_eq!(s.inner_protocol, 0x6558);
        let g = parse(
            "gre",
            &[("remote_ip", "10.0.0.2"), ("packet_type", "legacy_l3")],
        )
        .unwrap();
        let s = g.encap_spec(
            mac,
            mac,
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            Some(9),
            0,
            0,
            0x0800,
            &[],
        );
        assert_eq!((s.key, s.ttl, s.inner_protocol), (None, 64, 0x0800));
    }

    #[test]
    fn bad_options_give_clear_errors() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("vxlan", &[], "needs options:remote_ip"),
            (
                "vxlan",
                &[("remote_ip", "notanip")],
                "neither an IP address nor \"flow\"",
            ),
            (
                "vxlan",
                &[("remote_ip", "224.0.0.1")],
                "not a unicast address",
            ),
            (
                "gre",
                &[("remote_ip", "10.1.1.1"), ("local_ip", "fd00::1")],
                "different address families",
            ),
            (
                "vxlan",
                &[("remote_ip", "10.1.1.1"), ("local_ip", "flow")],
                "local_ip=flow needs",
            ),
            (
                "vxlan",
                &[("remote_ip", "10.1.1.1"), ("key", "foo")],
                "neither a number nor \"flow\"",
            ),
            (
                "vxlan",
                &[("remote_ip", "10.1.1.1"), ("key", "16777216")],
                "does not fit a vxlan key",
            ),
            (
                "geneve",
                &[("remote_ip", "10.1.1.1"), ("dst_port", "99999")],
                "not a port number",
            ),
            (
                "gre",
                &[("remote_ip", "10.1.1.1"), ("dst_port", "1")],
                "does not apply to gre",
            ),
            (
                "vxlan",
                &[("remote_ip", "10.1.1.1"), ("csum", "yes")],
                "must be true or false",
            ),
            (
                "vxlan",
                &[("remote_ip", "10.1.1.1"), ("ttl", "0")],
                "options:ttl",
            ),
            (
                "vxlan",
                &[("remote_ip", "10.1.1.1"), ("packet_type", "legacy_l3")],
                "not supported on a vxlan",
            ),
        ];
        for (kind, kv, want) in cases {
            let e = parse(kind, kv).unwrap_err();
            assert!(
                e.starts_with("t0: ") && e.contains(want),
                "{kind} {kv:?}: {e}"
            );
        }
    }

    #[test]
    fn unknown_options_are_warnings_not_errors() {
        let (_, w) = TunnelConfig::parse(
            "t0",
            "geneve",
            &opts(&[("remote_ip", "10.1.1.1"), ("bogus", "1")]),
        )
        .unwrap();
        assert_eq!(w, ["t0: unknown geneve option \"bogus\" ignored"]);
    }
}
