//! Native tunnelling's control plane: the route table and neighbour cache
//! (kept in step with the kernel and the slow path) and their appctl
//! commands in OVS's vocabulary.

pub mod appctl;
pub mod neigh;
pub mod netlink;
pub mod route;

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use std::collections::BTreeMap;

use flows::FlowKey;
use wire::MacAddr;
use wire::tunnel::EncapHeader;

use crate::tunnel_config::{Endpoint, TunnelConfig};
use tracing::debug;

use neigh::NeighCache;
use route::{DevAddr, Route, RouteTable};

/// Routes, device addresses and neighbours.
pub struct Tnl {
    routes: RwLock<RouteTable>,
    addrs: RwLock<Vec<DevAddr>>,
    neigh: Mutex<NeighCache>,
    epoch: Instant,
}

impl Default for Tnl {
    fn default() -> Self {
        Tnl {
            routes: RwLock::new(RouteTable::default()),
            addrs: RwLock::new(Vec::new()),
            neigh: Mutex::new(NeighCache::default()),
            epoch: Instant::now(),
        }
    }
}

impl Tnl {
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn routes(&self) -> RwLockReadGuard<'_, RouteTable> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn routes_mut(&self) -> RwLockWriteGuard<'_, RouteTable> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn addrs(&self) -> Vec<DevAddr> {
        self.addrs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn neigh(&self) -> MutexGuard<'_, NeighCache> {
        self.neigh.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs what the kernel reported.
    pub fn set_kernel_state(&self, addrs: Vec<DevAddr>, routes: Vec<Route>) {
        *self.addrs.write().unwrap_or_else(|p| p.into_inner()) = addrs;
        self.routes_mut().set_kernel(routes);
    }

    /// The output device and next hop for `dst`.
    pub fn next_hop(&self, dst: IpAddr) -> Option<(String, IpAddr, IpAddr)> {
        let t = self.routes();
        let r = t.lookup(dst, 0)?;
        Some((r.dev.clone(), r.gw.unwrap_or(dst), r.src))
    }

    /// The outer header a packet described by `key` gets on tunnel port
    /// `cfg` now, and the underlay device it leaves through: the route to
    /// the remote, the next hop's MAC from the neighbour cache and the
    /// device's own MAC from `macs`.
    pub fn header_for(
        &self,
        cfg: &TunnelConfig,
        key: &FlowKey,
        macs: &BTreeMap<String, MacAddr>,
    ) -> Result<(EncapHeader, String), String> {
        let Endpoint::Ip(remote) = cfg.remote else {
            return Err("remote_ip=flow needs tun_dst from the flow".into());
        };
        let (dev, hop, src) = self
            .next_hop(remote)
            .ok_or_else(|| format!("no route to {remote}"))?;
        let local = match cfg.local {
            Some(Endpoint::Ip(l)) => l,
            _ => src,
        };
        let now = self.now_ms();
        let hop_mac = self
            .neigh()
            .lookup(hop, now)
            .map(|e| e.mac)
            .ok_or_else(|| format!("no neighbour entry for {hop}"))?;
        let dev_mac = *macs
            .get(&dev)
            .ok_or_else(|| format!("{dev} is not a device of this switch"))?;
        let spec = cfg.encap_spec(
            dev_mac,
            hop_mac,
            local,
            remote,
            None,
            key.nw_tos,
            key.nw_ttl,
            key.dl_type,
            &[],
        );
        let h = EncapHeader::build(&spec).map_err(|e| e.to_string())?;
        Ok((h, dev))
    }

    /// The slow-path hook: learns the neighbour an ARP reply or neighbour
    /// advertisement seen on `bridge` announces, and un-wildcards the
    /// fields it read in `mask` so that each neighbour reaches it.
    pub fn snoop(&self, bridge: &str, key: &FlowKey, mask: &mut FlowKey) {
        let mut used = FlowKey::default();
        let found = neigh::announced(key, &mut used);
        mask.dl_type |= used.dl_type;
        mask.nw_proto |= used.nw_proto;
        mask.nw_src |= used.nw_src;
        mask.tp_src |= used.tp_src;
        for (m, u) in mask.arp_sha.iter_mut().zip(used.arp_sha) {
            *m |= u;
        }
        for (m, u) in mask.arp_tha.iter_mut().zip(used.arp_tha) {
            *m |= u;
        }
        for (m, u) in mask.nd_target.iter_mut().zip(used.nd_target) {
            *m |= u;
        }
        if let Some((ip, mac)) = found {
            let now = self.now_ms();
            let mut n = self.neigh();
            if n.learn(bridge, ip, mac, now) {
                n.expire(now);
                debug!(bridge, %ip, %mac, "neighbour learned");
            }
        }
    }
}
