//! Native tunnelling in translation: what the slow path does to the
//! datapath actions of a translated packet so that the datapath tunnels
//! it, as Open vSwitch's userspace datapath does.
//!
//! - Output to a tunnel port becomes `tnl_push(header, out)`: the outer
//!   header (route to the remote, next hop's MAC from the neighbour cache,
//!   the underlay device's MAC, the port's options and the `tun_*` fields
//!   the packet carries at that point) is interned in the datapath's header
//!   table, and the copy leaves through the underlay bridge port the route
//!   names. When the next hop's MAC is unknown, an ARP request goes out of
//!   the underlay bridge and the packet is dropped without caching the
//!   decision, so the next packets get through once the reply was snooped.
//! - Output to the internal port that owns a local tunnel address, of a
//!   packet for a tunnel port's UDP port (or GRE), becomes
//!   `tnl_pop(port)`: the datapath strips the outer header and the inner
//!   frame re-enters as received on that tunnel port, with `tun_*` set.
//!   The upcall of the inner frame then picks the tunnel port whose
//!   `remote_ip`, `local_ip` and `key` fit the received header
//!   ([`Tnl::receive_port`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use flows::key::ipproto;
use flows::{DpAction, DpPortNo, FlowKey};
use wire::MacAddr;
use wire::tunnel::{EncapHeader, TunnelProto};

use super::Tnl;
use crate::tunnel_config::{Endpoint, Key, TunnelConfig};

/// One tunnel Interface, as translation needs it.
#[derive(Debug, Clone)]
pub struct TnlPortInfo {
    pub name: String,
    pub dp_port: DpPortNo,
    pub cfg: TunnelConfig,
    /// The bridge the tunnel port is on (whose TLV map its Geneve options
    /// follow).
    pub bridge: String,
}

/// One device of the switch (internal or system port).
#[derive(Debug, Clone)]
pub struct DevInfo {
    pub bridge: String,
    pub dp_port: DpPortNo,
    pub mac: Option<MacAddr>,
}

/// The switch's ports as native tunnelling sees them; replaced as a whole
/// on every reconfiguration.
#[derive(Debug, Default)]
pub struct TnlView {
    pub tunnels: Vec<TnlPortInfo>,
    /// Non-tunnel ports by name.
    pub devs: BTreeMap<String, DevInfo>,
}

impl TnlView {
    fn tunnel(&self, dp: DpPortNo) -> Option<&TnlPortInfo> {
        self.tunnels.iter().find(|t| t.dp_port == dp)
    }

    fn dev_of_dp(&self, dp: DpPortNo) -> Option<(&str, &DevInfo)> {
        self.devs
            .iter()
            .find(|(_, d)| d.dp_port == dp)
            .map(|(n, d)| (n.as_str(), d))
    }
}

/// Why an output to a tunnel port cannot be pushed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushFailure {
    /// The next hop's MAC is not known yet (an ARP request / NS was sent).
    NoNeighbour(IpAddr),
    Other(String),
}

impl std::fmt::Display for PushFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushFailure::NoNeighbour(ip) => write!(f, "no neighbour entry for {ip}"),
            PushFailure::Other(s) => f.write_str(s),
        }
    }
}

/// Where the underlay bridge sends an encapsulated packet: called with the
/// bridge, the datapath port of its internal device the packet comes from,
/// and the outer header; returns the datapath ports (the bridge's
/// forwarding decision for the outer packet, as OVS translates it through
/// the underlay bridge).
pub type Underlay<'a> = dyn Fn(&str, DpPortNo, &EncapHeader) -> Vec<DpPortNo> + 'a;

/// The flow key of an outer header, as received on `in_port`.
pub fn outer_key(h: &EncapHeader, in_port: u32) -> FlowKey {
    let b = h.as_bytes();
    let mut k = FlowKey {
        in_port,
        ..FlowKey::default()
    };
    k.dl_dst.copy_from_slice(&b[0..6]);
    k.dl_src.copy_from_slice(&b[6..12]);
    k.dl_type = u16::from_be_bytes([b[12], b[13]]);
    let l4 = match k.dl_type {
        flows::key::ethertype::IPV4 => {
            k.nw_tos = b[15];
            k.nw_ttl = b[22];
            k.nw_proto = b[23];
            k.nw_src = u32::from_be_bytes([b[26], b[27], b[28], b[29]]);
            k.nw_dst = u32::from_be_bytes([b[30], b[31], b[32], b[33]]);
            34
        }
        _ => {
            k.nw_proto = b[20];
            k.nw_ttl = b[21];
            k.ipv6_src.copy_from_slice(&b[22..38]);
            k.ipv6_dst.copy_from_slice(&b[38..54]);
            54
        }
    };
    if k.nw_proto == ipproto::UDP {
        k.tp_dst = u16::from_be_bytes([b[l4 + 2], b[l4 + 3]]);
    }
    k
}

/// A resolved tunnel output: the header and the underlay device.
pub struct Push {
    pub header: EncapHeader,
    pub dev: String,
    pub dev_dp: DpPortNo,
}

/// The remote a packet with fields `tk` goes to on `cfg`.
fn remote_of(cfg: &TunnelConfig, tk: &FlowKey) -> Result<IpAddr, PushFailure> {
    match cfg.remote {
        Endpoint::Ip(r) => Ok(r),
        Endpoint::Flow if tk.tun_dst != 0 => Ok(IpAddr::V4(Ipv4Addr::from(tk.tun_dst))),
        Endpoint::Flow if tk.tun_ipv6_dst != [0; 16] => {
            Ok(IpAddr::V6(Ipv6Addr::from(tk.tun_ipv6_dst)))
        }
        Endpoint::Flow => Err(PushFailure::Other(
            "remote_ip=flow and the packet has no tun_dst".into(),
        )),
    }
}

fn local_addr_of(tk: &FlowKey) -> Option<IpAddr> {
    if tk.tun_src != 0 {
        Some(IpAddr::V4(Ipv4Addr::from(tk.tun_src)))
    } else if tk.tun_ipv6_src != [0; 16] {
        Some(IpAddr::V6(Ipv6Addr::from(tk.tun_ipv6_src)))
    } else {
        None
    }
}

impl Tnl {
    /// The switch's ports, as last published.
    pub fn view(&self) -> Arc<TnlView> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether datapath port `dp` is a tunnel port.
    pub fn is_tunnel_port(&self, dp: DpPortNo) -> bool {
        self.view().tunnel(dp).is_some()
    }

    /// Whether a cached `tnl_push` may depend on where one of `macs` is
    /// learned: one of them is a tunnel next hop's (the underlay bridge
    /// chose the output port by it).
    pub fn next_hop_moved(&self, macs: &[[u8; 6]]) -> bool {
        if self.view().tunnels.is_empty() {
            return false;
        }
        let n = self.neigh();
        macs.iter().any(|m| n.has_mac(MacAddr(*m)))
    }

    /// Publishes the switch's ports (after a reconfiguration).
    pub fn set_view(&self, v: TnlView) {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
    }

    /// The outer header a packet whose fields are `tk` (its `tun_*` as the
    /// pipeline left them, its inner TOS/TTL) gets on tunnel port `cfg` of
    /// bridge `bridge`. A Geneve header carries, as options, the
    /// `tun_metadataN` present in `tk` as `bridge`'s TLV map maps them.
    pub fn resolve_push(
        &self,
        view: &TnlView,
        cfg: &TunnelConfig,
        bridge: &str,
        tk: &FlowKey,
    ) -> Result<Push, PushFailure> {
        let remote = remote_of(cfg, tk)?;
        let (dev, hop, src) = self
            .next_hop(remote)
            .ok_or_else(|| PushFailure::Other(format!("no route to {remote}")))?;
        let local = match cfg.local {
            Some(Endpoint::Ip(l)) => l,
            Some(Endpoint::Flow) => local_addr_of(tk).unwrap_or(src),
            None => src,
        };
        let d = view
            .devs
            .get(&dev)
            .ok_or_else(|| PushFailure::Other(format!("{dev} is not a device of this switch")))?;
        let dev_mac = d
            .mac
            .ok_or_else(|| PushFailure::Other(format!("{dev} has no MAC address")))?;
        let now = self.now_ms();
        let Some(hop_mac) = self.neigh().lookup(hop, now).map(|e| e.mac) else {
            return Err(PushFailure::NoNeighbour(hop));
        };
        let options = if cfg.proto == TunnelProto::Geneve && tk.tun_metadata_present != 0 {
            datapath::tunnel::geneve_options(&self.tlv_map(bridge), tk)
        } else {
            Vec::new()
        };
        let spec = cfg.encap_spec(
            dev_mac,
            hop_mac,
            local,
            remote,
            Some(tk.tun_id),
            tk.nw_tos,
            tk.nw_ttl,
            tk.dl_type,
            &options,
        );
        let header = EncapHeader::build(&spec).map_err(|e| PushFailure::Other(e.to_string()))?;
        Ok(Push {
            header,
            dev_dp: d.dp_port,
            dev,
        })
    }

    /// Rewrites the translated `actions` of the datapath packet `key` for
    /// native tunnelling (see the module comment). `tunnel_keys` are the
    /// translation's [`flows::xlate::XlateResult::tunnel_keys`]; `mask` is
    /// the megaflow mask (datapath terms), widened with what the rewrite
    /// read. Returns false when the decision must not be cached.
    pub fn rewrite_actions(
        &self,
        key: &FlowKey,
        actions: &mut Vec<DpAction>,
        tunnel_keys: &[(usize, FlowKey)],
        mask: &mut FlowKey,
        underlay: &Underlay<'_>,
    ) -> bool {
        let view = self.view();
        if view.tunnels.is_empty() {
            return true;
        }
        // Inside check_pkt_len branches the action count is fixed: one
        // action replaces one output there.
        let flat = !actions
            .iter()
            .any(|a| matches!(a, DpAction::CheckPktLen { .. }));
        let mut install = true;
        let mut out = Vec::with_capacity(actions.len() + 1);
        for (i, &a) in actions.iter().enumerate() {
            let DpAction::Output(dp) = a else {
                out.push(a);
                continue;
            };
            if let Some(t) = view.tunnel(dp) {
                let tk = match tunnel_keys.iter().find(|(j, _)| *j == i) {
                    Some((_, k)) => {
                        // The metadata came from an action: the rule that
                        // ran it is in the mask already.
                        let mut k = *k;
                        k.nw_tos = key.nw_tos;
                        k.nw_ttl = key.nw_ttl;
                        k
                    }
                    None => {
                        if t.cfg.remote == Endpoint::Flow {
                            mask.tun_dst = u32::MAX;
                            mask.tun_ipv6_dst = [0xff; 16];
                        }
                        if t.cfg.out_key == Some(Key::Flow) {
                            mask.tun_id = u64::MAX;
                        }
                        if t.cfg.proto == TunnelProto::Geneve {
                            // Received options go out again as options.
                            mask.tun_metadata = [0xff; flows::key::TUN_METADATA_BYTES];
                            mask.tun_metadata_present = u64::MAX;
                        }
                        *key
                    }
                };
                if t.cfg.tos == crate::tunnel_config::Inherit::Inherit {
                    mask.nw_tos = u8::MAX;
                }
                if t.cfg.ttl == crate::tunnel_config::Inherit::Inherit {
                    mask.nw_ttl = u8::MAX;
                }
                let before = out.len();
                match self.resolve_push(&view, &t.cfg, &t.bridge, &tk) {
                    Ok(p) => match self.header_slot(&p.header) {
                        Some(h) => {
                            let bridge = view.devs.get(&p.dev).map_or("", |d| d.bridge.as_str());
                            for o in underlay(bridge, p.dev_dp, &p.header) {
                                if flat || out.len() == before {
                                    out.push(DpAction::TnlPush {
                                        tnl_port: dp,
                                        header: h,
                                        out: o,
                                    });
                                }
                            }
                        }
                        None => {
                            tracing::warn!("tunnel header table full; {} drops", t.name);
                        }
                    },
                    Err(PushFailure::NoNeighbour(hop)) => {
                        install = false;
                        self.request_neighbour(&view, &t.cfg, &tk, hop);
                    }
                    Err(e) => {
                        tracing::debug!(port = %t.name, "tunnel output dropped: {e}");
                    }
                }
                if out.len() == before && !flat {
                    out.push(no_push(dp));
                }
                continue;
            }
            match self.pop_for(&view, key, dp, mask) {
                Some(pop) => out.push(pop),
                None => out.push(a),
            }
        }
        *actions = out;
        install
    }

    fn header_slot(&self, h: &EncapHeader) -> Option<u32> {
        self.dp.get()?.0.intern(h)
    }

    /// `tnl_pop` for a packet `key` that translation sends to device `dp`,
    /// when `dp` is an internal port owning a local address and the packet
    /// is tunnel traffic for it.
    fn pop_for(
        &self,
        view: &TnlView,
        key: &FlowKey,
        dp: DpPortNo,
        mask: &mut FlowKey,
    ) -> Option<DpAction> {
        let (dev, _) = view.dev_of_dp(dp)?;
        let addrs = self.addrs();
        let mine: Vec<IpAddr> = addrs
            .iter()
            .filter(|a| a.dev == dev)
            .map(|a| a.addr)
            .collect();
        if mine.is_empty() {
            return None;
        }
        // Whether this is tunnel traffic depends on these fields, for every
        // packet sent to this device.
        mask.dl_type = u16::MAX;
        let dst = match key.dl_type {
            flows::key::ethertype::IPV4 => {
                mask.nw_dst = u32::MAX;
                IpAddr::V4(Ipv4Addr::from(key.nw_dst))
            }
            flows::key::ethertype::IPV6 => {
                mask.ipv6_dst = [0xff; 16];
                IpAddr::V6(Ipv6Addr::from(key.ipv6_dst))
            }
            _ => return None,
        };
        if !mine.contains(&dst) {
            return None;
        }
        mask.nw_proto = u8::MAX;
        mask.nw_frag = u8::MAX;
        if key.nw_frag != 0 {
            return None;
        }
        let t = match key.nw_proto {
            ipproto::UDP => {
                mask.tp_dst = u16::MAX;
                view.tunnels.iter().find(|t| {
                    t.cfg.proto != TunnelProto::Gre
                        && t.cfg.dst_port == key.tp_dst
                        && local_fits(&t.cfg, dst)
                })?
            }
            47 => view
                .tunnels
                .iter()
                .find(|t| t.cfg.proto == TunnelProto::Gre && local_fits(&t.cfg, dst))?,
            _ => return None,
        };
        let tlv =
            if t.cfg.proto == TunnelProto::Geneve {
                match self.dp.get() {
                    Some((headers, _)) => headers
                        .intern_tlv(&self.tlv_map(&t.bridge))
                        .unwrap_or_else(|| {
                            tracing::warn!(
                                port = %t.name,
                                "TLV map table full; Geneve options on this port are not decoded"
                            );
                            flows::dpaction::NO_TLV_MAP
                        }),
                    None => flows::dpaction::NO_TLV_MAP,
                }
            } else {
                flows::dpaction::NO_TLV_MAP
            };
        Some(DpAction::TnlPop {
            port: t.dp_port,
            proto: datapath::tunnel::proto_number(t.cfg.proto),
            dst_port: t.cfg.dst_port,
            tlv,
        })
    }

    /// For a packet that re-entered after `tnl_pop` on tunnel port
    /// `key.in_port`: the tunnel port it belongs to, by the received outer
    /// addresses and key (OVS's order: fixed remote and key first, then
    /// fixed remote, then fixed key, then fully flow-based). Widens `mask`
    /// with the fields that choice read. `None`: no port takes it.
    pub fn receive_port(&self, key: &FlowKey, mask: &mut FlowKey) -> Option<DpPortNo> {
        let view = self.view();
        let rep = view.tunnel(key.in_port)?;
        let (src, dst) = if key.tun_src != 0 || key.tun_dst != 0 {
            mask.tun_src = u32::MAX;
            mask.tun_dst = u32::MAX;
            (
                IpAddr::V4(Ipv4Addr::from(key.tun_src)),
                IpAddr::V4(Ipv4Addr::from(key.tun_dst)),
            )
        } else if key.tun_ipv6_src != [0; 16] {
            mask.tun_ipv6_src = [0xff; 16];
            mask.tun_ipv6_dst = [0xff; 16];
            (
                IpAddr::V6(Ipv6Addr::from(key.tun_ipv6_src)),
                IpAddr::V6(Ipv6Addr::from(key.tun_ipv6_dst)),
            )
        } else {
            // Not a popped packet (nothing else enters on a tunnel port).
            return None;
        };
        mask.tun_id = u64::MAX;
        let same_kind = |t: &&TnlPortInfo| {
            t.cfg.proto == rep.cfg.proto
                && t.cfg.dst_port == rep.cfg.dst_port
                && local_fits(&t.cfg, dst)
        };
        let key_fits = |t: &TnlPortInfo, fixed: bool| match t.cfg.in_key {
            Some(Key::Fixed(k)) => fixed && k == key.tun_id,
            Some(Key::Flow) => !fixed,
            None => fixed && key.tun_id == 0,
        };
        let remote_fits = |t: &TnlPortInfo, fixed: bool| match t.cfg.remote {
            Endpoint::Ip(r) => fixed && r == src,
            Endpoint::Flow => !fixed,
        };
        for (fixed_remote, fixed_key) in
            [(true, true), (true, false), (false, true), (false, false)]
        {
            if let Some(t) = view
                .tunnels
                .iter()
                .filter(same_kind)
                .find(|t| remote_fits(t, fixed_remote) && key_fits(t, fixed_key))
            {
                return Some(t.dp_port);
            }
        }
        None
    }

    /// Sends an ARP request (IPv4) or a neighbour solicitation (IPv6) for
    /// `hop` out of the bridge that owns the underlay device, as OVS does
    /// when a tunnel's next hop is unknown.
    fn request_neighbour(&self, view: &TnlView, cfg: &TunnelConfig, tk: &FlowKey, hop: IpAddr) {
        let Ok(remote) = remote_of(cfg, tk) else {
            return;
        };
        let Some((dev, _, src)) = self.next_hop(remote) else {
            return;
        };
        let Some(d) = view.devs.get(&dev) else {
            return;
        };
        let Some(mac) = d.mac else { return };
        let frame = match (hop, src) {
            (IpAddr::V4(hop4), IpAddr::V4(src4)) => arp_request(mac, src4, hop4),
            (IpAddr::V6(hop6), IpAddr::V6(src6)) => neighbour_solicitation(mac, src6, hop6),
            _ => return,
        };
        let Some((_, dp)) = self.dp.get() else { return };
        let Some(dp) = dp.as_ref().and_then(|w| w.upgrade()) else {
            return;
        };
        let outs: Vec<DpAction> = view
            .devs
            .values()
            .filter(|o| o.bridge == d.bridge && o.dp_port != d.dp_port)
            .map(|o| DpAction::Output(o.dp_port))
            .collect();
        let mut pkt = datapath::packet::Packet::from_bytes(&frame);
        pkt.in_port = d.dp_port;
        self.arp_requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%hop, bridge = %d.bridge, "tunnel next hop unknown: ARP/NS sent");
        dp.execute(pkt, outs);
    }
}

/// The action that replaces an output to a tunnel port that cannot be
/// pushed now: a push with no header, which the datapath counts and drops.
fn no_push(dp: DpPortNo) -> DpAction {
    DpAction::TnlPush {
        tnl_port: dp,
        header: u32::MAX,
        out: dp,
    }
}

fn local_fits(cfg: &TunnelConfig, dst: IpAddr) -> bool {
    match cfg.local {
        Some(Endpoint::Ip(l)) => l == dst,
        _ => true,
    }
}

/// A broadcast ARP request from `mac`/`ip` for `target`.
pub fn arp_request(mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// A neighbour solicitation from `mac`/`ip` for `target`, to the
/// target's solicited-node multicast group, with a source link-layer
/// address option.
pub fn neighbour_solicitation(mac: MacAddr, ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&mac.0);
    let pseudo = wire::checksum::pseudo_header_v6(ip.octets(), group.octets(), 58, icmp.len());
    let c = wire::checksum::finish(wire::checksum::accumulate(pseudo, &icmp), false);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&group.octets());
    f.extend_from_slice(&icmp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tnl::route::{DevAddr, Route};

    fn cfg(kind: &str, opts: &[(&str, &str)]) -> TunnelConfig {
        let o = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TunnelConfig::parse("t", kind, &o).unwrap().0
    }

    const PHY_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const PEER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    /// br-phy (LOCAL dp 1, owning 10.9.0.1/24, phys dp 2), br-int with
    /// tunnel ports on dp 10.. and a VM port on dp 3.
    fn setup(tunnels: Vec<TunnelConfig>) -> Tnl {
        let t = Tnl::default();
        let dev = |bridge: &str, dp, mac| DevInfo {
            bridge: bridge.into(),
            dp_port: dp,
            mac,
        };
        let mut devs = BTreeMap::new();
        devs.insert("br-phy".to_string(), dev("br-phy", 1, Some(PHY_MAC)));
        devs.insert("phy0".to_string(), dev("br-phy", 2, None));
        devs.insert("vm0".to_string(), dev("br-int", 3, None));
        t.set_view(TnlView {
            tunnels: tunnels
                .into_iter()
                .enumerate()
                .map(|(i, cfg)| TnlPortInfo {
                    name: format!("t{i}"),
                    dp_port: 10 + i as u32,
                    cfg,
                    bridge: "br-int".into(),
                })
                .collect(),
            devs,
        });
        let local: IpAddr = "10.9.0.1".parse().unwrap();
        t.set_kernel_state(
            vec![DevAddr {
                dev: "br-phy".into(),
                addr: local,
                plen: 24,
            }],
            vec![Route {
                prefix: "10.9.0.0".parse().unwrap(),
                plen: 24,
                dev: "br-phy".into(),
                gw: None,
                src: local,
                mark: 0,
                local: false,
                origin: crate::tnl::route::Origin::Kernel,
            }],
        );
        t.attach(Arc::new(datapath::tunnel::HeaderTable::default()), None);
        t
    }

    /// The underlay bridge's decision: out of the physical port (dp 2).
    fn phys(_: &str, _: DpPortNo, _: &EncapHeader) -> Vec<DpPortNo> {
        vec![2]
    }

    fn vm_packet() -> FlowKey {
        FlowKey {
            in_port: 3,
            dl_type: 0x0800,
            nw_proto: 6,
            nw_ttl: 64,
            ..FlowKey::default()
        }
    }

    fn ovn_tlv_map() -> flows::tlv::TlvMap {
        let mut m = flows::tlv::TlvMap::new();
        m.apply(
            flows::tlv::TlvCommand::Add,
            &[flows::tlv::TlvMapping {
                class: 0x0102,
                type_: 0x80,
                len: 4,
                index: 0,
            }],
            |_| false,
        )
        .unwrap();
        m
    }

    #[test]
    fn geneve_push_carries_the_packets_tun_metadata_as_options_of_the_bridges_tlv_map() {
        let t = setup(vec![cfg(
            "geneve",
            &[("remote_ip", "10.9.0.2"), ("key", "7")],
        )]);
        t.neigh()
            .set("br-phy", "10.9.0.2".parse().unwrap(), PEER_MAC, t.now_ms());
        let map = ovn_tlv_map();
        t.set_tlv_map("br-int", &map);
        let mut key = vm_packet();
        assert!(map.set_value(&mut key, 0, &[0, 0, 0x12, 0x34]));
        let header_of = |key: &FlowKey| {
            let mut mask = FlowKey::default();
            let mut acts = vec![DpAction::Output(10)];
            assert!(t.rewrite_actions(key, &mut acts, &[], &mut mask, &phys));
            assert_eq!(mask.tun_metadata_present, u64::MAX);
            let DpAction::TnlPush { header, .. } = acts[0] else {
                panic!("{acts:?}");
            };
            t.dp.get().unwrap().0.get(header).unwrap().ovs_text()
        };
        let h = header_of(&key);
        assert!(
            h.contains("geneve(crit,vni=0x7,options({class=0x102,type=0x80,len=4,0x00001234}))"),
            "{h}"
        );
        // Without the option in the packet, no options are sent.
        let plain = header_of(&vm_packet());
        assert!(!plain.contains("options("), "{plain}");
    }

    #[test]
    fn geneve_pop_names_the_tunnel_bridges_tlv_map_and_vxlan_pop_none() {
        let t = setup(vec![
            cfg("geneve", &[("remote_ip", "flow"), ("key", "flow")]),
            cfg("vxlan", &[("remote_ip", "flow"), ("key", "flow")]),
        ]);
        let pop = |tp_dst: u16| {
            let key = FlowKey {
                in_port: 2,
                dl_type: 0x0800,
                nw_proto: 17,
                nw_dst: u32::from(Ipv4Addr::new(10, 9, 0, 1)),
                tp_dst,
                ..FlowKey::default()
            };
            let mut acts = vec![DpAction::Output(1)];
            assert!(t.rewrite_actions(&key, &mut acts, &[], &mut FlowKey::default(), &phys));
            match acts[0] {
                DpAction::TnlPop { tlv, .. } => tlv,
                a => panic!("{a:?}"),
            }
        };
        assert_eq!(pop(6081), flows::dpaction::NO_TLV_MAP);
        t.set_tlv_map("br-int", &ovn_tlv_map());
        let slot = pop(6081);
        assert_eq!(t.dp.get().unwrap().0.tlv(slot), Some(&ovn_tlv_map()));
        assert_eq!(pop(4789), flows::dpaction::NO_TLV_MAP);
    }

    #[test]
    fn output_to_a_tunnel_port_becomes_a_push_out_of_the_underlay_once_the_neighbour_is_known() {
        let t = setup(vec![cfg(
            "vxlan",
            &[("remote_ip", "10.9.0.2"), ("key", "7")],
        )]);
        let key = vm_packet();
        let mut mask = FlowKey::default();
        let mut acts = vec![DpAction::Output(10)];
        // Unknown neighbour: not cached, no header.
        assert!(!t.rewrite_actions(&key, &mut acts, &[], &mut mask, &phys));
        assert_eq!(acts, vec![]);
        assert_eq!(
            t.arp_requests.load(Ordering::Relaxed),
            0,
            "no datapath attached"
        );
        t.neigh()
            .set("br-phy", "10.9.0.2".parse().unwrap(), PEER_MAC, t.now_ms());
        let mut acts = vec![DpAction::Output(10)];
        assert!(t.rewrite_actions(&key, &mut acts, &[], &mut mask, &phys));
        let DpAction::TnlPush {
            tnl_port,
            header,
            out,
        } = acts[0]
        else {
            panic!("{acts:?}");
        };
        assert_eq!((tnl_port, out), (10, 2));
        let h = t.dp.get().unwrap().0.get(header).unwrap().ovs_text();
        assert!(
            h.contains("eth(dst=02:00:00:00:00:02,src=02:00:00:00:00:01"),
            "{h}"
        );
        assert!(h.contains("ipv4(src=10.9.0.1,dst=10.9.0.2,proto=17"), "{h}");
        assert!(h.contains("vxlan(flags=0x8000000,vni=0x7)"), "{h}");
    }

    #[test]
    fn flow_based_ports_take_remote_and_key_from_the_actions() {
        let t = setup(vec![cfg(
            "geneve",
            &[("remote_ip", "flow"), ("key", "flow")],
        )]);
        t.neigh()
            .set("br-phy", "10.9.0.5".parse().unwrap(), PEER_MAC, t.now_ms());
        let key = vm_packet();
        let mut set = key;
        set.tun_dst = u32::from(Ipv4Addr::new(10, 9, 0, 5));
        set.tun_id = 0x1234;
        let mut acts = vec![DpAction::Output(10)];
        let mut mask = FlowKey::default();
        assert!(t.rewrite_actions(&key, &mut acts, &[(0, set)], &mut mask, &phys));
        let DpAction::TnlPush { header, .. } = acts[0] else {
            panic!("{acts:?}");
        };
        let h = t.dp.get().unwrap().0.get(header).unwrap().ovs_text();
        assert!(h.contains("dst=10.9.0.5"), "{h}");
        assert!(h.contains("geneve(vni=0x1234)"), "{h}");
        // Without tun_dst there is nowhere to send it.
        let mut acts = vec![DpAction::Output(10)];
        assert!(t.rewrite_actions(&key, &mut acts, &[], &mut mask, &phys));
        assert_eq!(acts, vec![]);
        assert_eq!(mask.tun_dst, u32::MAX, "the received tun_dst was read");
    }

    #[test]
    fn tunnel_traffic_to_the_local_address_is_popped_and_other_traffic_is_not() {
        let t = setup(vec![
            cfg("vxlan", &[("remote_ip", "10.9.0.2")]),
            cfg("geneve", &[("remote_ip", "10.9.0.2")]),
        ]);
        let mut key = FlowKey {
            in_port: 2,
            dl_type: 0x0800,
            nw_proto: 17,
            nw_dst: u32::from(Ipv4Addr::new(10, 9, 0, 1)),
            tp_dst: 6081,
            ..FlowKey::default()
        };
        let mut mask = FlowKey::default();
        let mut acts = vec![DpAction::Output(1)];
        assert!(t.rewrite_actions(&key, &mut acts, &[], &mut mask, &phys));
        assert_eq!(
            acts,
            vec![DpAction::TnlPop {
                port: 11,
                proto: flows::dpaction::TUNNEL_PROTO_GENEVE,
                dst_port: 6081,
                tlv: flows::dpaction::NO_TLV_MAP,
            }]
        );
        assert_eq!(
            (mask.nw_dst, mask.nw_proto, mask.tp_dst),
            (u32::MAX, 0xff, 0xffff)
        );
        key.tp_dst = 53;
        let mut acts = vec![DpAction::Output(1)];
        t.rewrite_actions(&key, &mut acts, &[], &mut mask, &phys);
        assert_eq!(acts, vec![DpAction::Output(1)]);
        key.tp_dst = 4789;
        key.nw_dst = u32::from(Ipv4Addr::new(10, 9, 0, 77));
        let mut acts = vec![DpAction::Output(1)];
        t.rewrite_actions(&key, &mut acts, &[], &mut mask, &phys);
        assert_eq!(acts, vec![DpAction::Output(1)]);
    }

    #[test]
    fn a_popped_packet_belongs_to_the_port_whose_remote_and_key_fit_best() {
        let t = setup(vec![
            cfg("vxlan", &[("remote_ip", "flow"), ("key", "flow")]),
            cfg("vxlan", &[("remote_ip", "10.9.0.2"), ("key", "5")]),
            cfg("vxlan", &[("remote_ip", "10.9.0.2"), ("key", "flow")]),
        ]);
        let mut key = FlowKey {
            in_port: 10,
            tun_src: u32::from(Ipv4Addr::new(10, 9, 0, 2)),
            tun_dst: u32::from(Ipv4Addr::new(10, 9, 0, 1)),
            tun_id: 5,
            ..FlowKey::default()
        };
        let mut mask = FlowKey::default();
        assert_eq!(t.receive_port(&key, &mut mask), Some(11));
        assert_eq!((mask.tun_src, mask.tun_id), (u32::MAX, u64::MAX));
        key.tun_id = 6;
        assert_eq!(t.receive_port(&key, &mut mask), Some(12));
        key.tun_src = u32::from(Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(t.receive_port(&key, &mut mask), Some(10));
        // A packet that was not popped does not enter on a tunnel port.
        key.tun_src = 0;
        key.tun_dst = 0;
        assert_eq!(t.receive_port(&key, &mut mask), None);
    }

    #[test]
    fn a_change_of_kernel_addresses_or_routes_calls_the_hook_and_a_repeat_does_not() {
        let t = setup(vec![cfg("vxlan", &[("remote_ip", "10.9.0.2")])]);
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = n.clone();
        t.set_change_hook(Box::new(move || {
            c.fetch_add(1, Ordering::Relaxed);
        }));
        let addr = |a: &str| DevAddr {
            dev: "br-phy".into(),
            addr: a.parse().unwrap(),
            plen: 24,
        };
        t.set_kernel_state(vec![addr("10.9.0.1")], vec![]);
        t.set_kernel_state(vec![addr("10.9.0.1")], vec![]);
        assert_eq!(n.load(Ordering::Relaxed), 1);
        t.set_kernel_state(vec![addr("10.9.0.7")], vec![]);
        assert_eq!(n.load(Ordering::Relaxed), 2);
        // No tunnel port: nothing cached depends on the kernel's state.
        t.set_view(TnlView::default());
        t.set_kernel_state(vec![addr("10.9.0.1")], vec![]);
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn neighbour_solicitation_goes_to_the_solicited_node_group_with_a_valid_checksum() {
        let src: Ipv6Addr = "fd00:99::1".parse().unwrap();
        let target: Ipv6Addr = "fd00:99::2:abcd".parse().unwrap();
        let f = neighbour_solicitation(PHY_MAC, src, target);
        let mut k = FlowKey::default();
        flows::parse::extract_into(&f, 1, &mut k).unwrap();
        assert_eq!(k.dl_dst, [0x33, 0x33, 0xff, 0x02, 0xab, 0xcd]);
        assert_eq!((k.dl_type, k.nw_proto, k.tp_src), (0x86dd, 58, 135));
        assert_eq!(k.nd_target, target.octets());
        assert_eq!(k.arp_sha, PHY_MAC.0);
        let dst: Ipv6Addr = "ff02::1:ff02:abcd".parse().unwrap();
        assert_eq!(k.ipv6_dst, dst.octets());
        // The ICMPv6 checksum verifies: the sum over pseudo-header and
        // message is all ones.
        let icmp = &f[54..];
        let pseudo = wire::checksum::pseudo_header_v6(src.octets(), dst.octets(), 58, icmp.len());
        assert_eq!(
            wire::checksum::fold(wire::checksum::accumulate(pseudo, icmp)),
            0xffff
        );
    }

    #[test]
    fn a_relearned_next_hop_mac_invalidates_pushes_and_other_macs_do_not() {
        let t = setup(vec![cfg("vxlan", &[("remote_ip", "10.9.0.2")])]);
        t.neigh()
            .set("br-phy", "10.9.0.2".parse().unwrap(), PEER_MAC, t.now_ms());
        assert!(t.next_hop_moved(&[[9; 6], PEER_MAC.0]));
        assert!(!t.next_hop_moved(&[[9; 6]]));
        t.set_view(TnlView::default());
        assert!(!t.next_hop_moved(&[PEER_MAC.0]), "no tunnel ports");
    }

    #[test]
    fn arp_request_is_a_well_formed_broadcast() {
        let f = arp_request(
            PHY_MAC,
            Ipv4Addr::new(10, 9, 0, 1),
            Ipv4Addr::new(10, 9, 0, 2),
        );
        let mut k = FlowKey::default();
        flows::parse::extract_into(&f, 1, &mut k).unwrap();
        assert_eq!(k.dl_type, 0x0806);
        assert_eq!(k.nw_proto, 1);
        assert_eq!(k.nw_src, u32::from(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(k.nw_dst, u32::from(Ipv4Addr::new(10, 9, 0, 2)));
        assert_eq!(k.dl_dst, [0xff; 6]);
    }
}
