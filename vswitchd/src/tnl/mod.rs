//! Native tunnelling's control plane: the route table and neighbour cache
//! (kept in step with the kernel and the slow path) and their appctl
//! commands in OVS's vocabulary.

pub mod appctl;
pub mod native;
pub mod neigh;
pub mod netlink;
pub mod route;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};
use std::time::Instant;

use flows::FlowKey;

use tracing::debug;

use neigh::NeighCache;
use route::{DevAddr, Route, RouteTable};

/// Routes, device addresses and neighbours.
pub struct Tnl {
    routes: RwLock<RouteTable>,
    addrs: RwLock<Vec<DevAddr>>,
    neigh: Mutex<NeighCache>,
    epoch: Instant,
    /// The switch's tunnel ports and devices (`native::TnlView`).
    view: RwLock<Arc<native::TnlView>>,
    /// The datapath's tunnel header table, and the datapath to send ARP
    /// requests through.
    dp: OnceLock<(
        Arc<datapath::tunnel::HeaderTable>,
        Option<Weak<datapath::Datapath>>,
    )>,
    /// ARP requests sent for unknown tunnel next hops.
    pub arp_requests: AtomicU64,
    /// The kernel's routes as last read, to tell a change.
    kernel_routes: Mutex<Vec<Route>>,
    on_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Each bridge's Geneve TLV map as last changed (a copy of the
    /// bridge's `BridgeState::tlv`, published by the OpenFlow service), so
    /// that translation on the underlay bridge can decode and encode
    /// Geneve options without taking another bridge's lock.
    tlv_maps: RwLock<BTreeMap<String, Arc<flows::tlv::TlvMap>>>,
}

impl Default for Tnl {
    fn default() -> Self {
        Tnl {
            routes: RwLock::new(RouteTable::default()),
            addrs: RwLock::new(Vec::new()),
            neigh: Mutex::new(NeighCache::default()),
            epoch: Instant::now(),
            view: RwLock::new(Arc::default()),
            dp: OnceLock::new(),
            arp_requests: AtomicU64::new(0),
            kernel_routes: Mutex::new(Vec::new()),
            on_change: OnceLock::new(),
            tlv_maps: RwLock::new(BTreeMap::new()),
        }
    }
}

impl Tnl {
    /// Connects native tunnelling to the datapath (once, at start).
    pub fn attach(
        &self,
        headers: Arc<datapath::tunnel::HeaderTable>,
        dp: Option<Weak<datapath::Datapath>>,
    ) {
        let _ = self.dp.set((headers, dp));
    }

    /// Publishes bridge `bridge`'s TLV map (after a TLV table mod).
    pub fn set_tlv_map(&self, bridge: &str, map: &flows::tlv::TlvMap) {
        self.tlv_maps
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(bridge.to_string(), Arc::new(map.clone()));
    }

    /// Bridge `bridge`'s TLV map (empty when none was published).
    pub fn tlv_map(&self, bridge: &str) -> Arc<flows::tlv::TlvMap> {
        self.tlv_maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(bridge)
            .cloned()
            .unwrap_or_default()
    }

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
        let changed = {
            let mut last = self.kernel_routes.lock().unwrap_or_else(|p| p.into_inner());
            let mut a = self.addrs.write().unwrap_or_else(|p| p.into_inner());
            let changed = *a != addrs || *last != routes;
            *a = addrs;
            *last = routes.clone();
            changed
        };
        self.routes_mut().set_kernel(routes);
        // Cached tunnel decisions (headers, which packets are popped) were
        // made with the old addresses and routes. Without tunnel ports no
        // cached decision depends on them.
        if changed
            && !self.view().tunnels.is_empty()
            && let Some(hook) = self.on_change.get()
        {
            hook();
        }
    }

    /// What to call when the kernel's addresses or routes change (the
    /// daemon flushes the datapath's megaflows).
    pub fn set_change_hook(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_change.set(hook);
    }

    /// The output device and next hop for `dst`.
    pub fn next_hop(&self, dst: IpAddr) -> Option<(String, IpAddr, IpAddr)> {
        let t = self.routes();
        let r = t.lookup(dst, 0)?;
        Some((r.dev.clone(), r.gw.unwrap_or(dst), r.src))
    }

    /// The slow-path hook: learns the neighbour an ARP reply or neighbour
    /// advertisement seen on `bridge` announces, and un-wildcards the
    /// fields it read in `mask` so that each neighbour reaches it.
    pub fn snoop(&self, bridge: &str, key: &FlowKey, mask: &mut FlowKey) -> bool {
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
                return true;
            }
        }
        false
    }
}
