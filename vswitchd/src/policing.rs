//! Port policing, as Open vSwitch configures it:
//!
//! - `Interface.ingress_policing_rate` (kbit/s, 0 = off) and
//!   `ingress_policing_burst` (kbit; 0 = the default, 8000 kbit): frames a
//!   port receives beyond the rate are dropped before the flow caches;
//! - a `QoS` row of `type=egress-policer` on the Port, with
//!   `other_config:cir` (bytes/s) and `cbs` (bytes; 0 or missing = 9000):
//!   frames sent on the port beyond the rate are dropped.
//!
//! Both are enforced by the datapath's meters (`datapath::meter`), the same
//! token buckets the OpenFlow meters use, one datapath meter per policed
//! direction of an interface. The reconciler calls [`Policing::reconcile`]
//! after each configuration pass with the same DB snapshot the rest of the
//! configuration was built from.

use std::collections::BTreeMap;

use datapath::meter::LimiterConfig;
use flows::DpPortNo;
use ovsdb::{Data, Row};
use tracing::{info, warn};

use crate::switch::Switch;

/// A non-negative integer column (0 when unset or negative).
fn nonneg(row: &Row, col: &str) -> u64 {
    row.get(col)
        .and_then(|d| d.integers().first().copied())
        .unwrap_or(0)
        .max(0) as u64
}

/// Default ingress burst (kbit), as Open vSwitch documents it.
pub const DEFAULT_INGRESS_BURST_KBITS: u64 = 8000;
/// Default egress-policer burst (bytes) when `cbs` is 0 or missing.
pub const DEFAULT_EGRESS_CBS_BYTES: u64 = 9000;

/// A rate in bits per second and a bucket in bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rate {
    pub bps: u64,
    pub burst_bits: u64,
}

/// Policing wanted for one interface.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct IfacePolicing {
    pub ingress: Option<Rate>,
    pub egress: Option<Rate>,
}

/// Policing wanted, by interface name; plus what was wrong in the DB.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct PolicingConfig {
    pub ifaces: BTreeMap<String, IfacePolicing>,
    pub problems: Vec<String>,
}

/// Builds the policing configuration from a snapshot of the DB: every
/// Interface's ingress columns, and the egress-policer QoS of every Port.
pub fn from_data(data: &Data) -> PolicingConfig {
    let mut cfg = PolicingConfig::default();
    for (_, row) in data.table("Interface").iter() {
        let name = row.get_str("name").unwrap_or_default().to_owned();
        let rate = nonneg(row, "ingress_policing_rate");
        if rate > 0 {
            let burst = match nonneg(row, "ingress_policing_burst") {
                0 => DEFAULT_INGRESS_BURST_KBITS,
                b => b,
            };
            cfg.ifaces.entry(name).or_default().ingress = Some(Rate {
                bps: rate.saturating_mul(1000),
                burst_bits: burst.saturating_mul(1000),
            });
        }
    }
    for (_, port) in data.table("Port").iter() {
        let Some(qos_uuid) = port.get("qos").and_then(|q| q.uuids().first().copied()) else {
            continue;
        };
        let Some(qos) = data.row("QoS", &qos_uuid) else {
            continue;
        };
        let kind = qos.get_str("type").unwrap_or_default();
        if kind != "egress-policer" {
            if !kind.is_empty() {
                cfg.problems.push(format!(
                    "QoS type {kind} is not supported (only egress-policer)"
                ));
            }
            continue;
        }
        let oc = qos
            .get("other_config")
            .map(|d| d.to_string_map())
            .unwrap_or_default();
        let num = |k: &str| -> Result<u64, String> {
            match oc.get(k) {
                None => Ok(0),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| format!("QoS egress-policer: {k}={v} is not a number")),
            }
        };
        let (cir, cbs) = match (num("cir"), num("cbs")) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                cfg.problems.push(e);
                continue;
            }
        };
        if cir == 0 {
            continue;
        }
        let cbs = if cbs == 0 {
            DEFAULT_EGRESS_CBS_BYTES
        } else {
            cbs
        };
        let rate = Rate {
            bps: cir.saturating_mul(8),
            burst_bits: cbs.saturating_mul(8),
        };
        let ifaces = port
            .get("interfaces")
            .map(|d| d.uuids())
            .unwrap_or_default();
        for name in ifaces
            .iter()
            .filter_map(|u| data.row("Interface", u))
            .filter_map(|i| i.get_str("name"))
        {
            cfg.ifaces.entry(name.to_owned()).or_default().egress = Some(rate);
        }
    }
    cfg
}

/// Datapath meters serving one interface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Applied {
    dp_port: DpPortNo,
    wanted: IfacePolicing,
    ingress: Option<u32>,
    egress: Option<u32>,
}

/// The policers in force (owned by the reconciler thread).
#[derive(Default)]
pub struct Policing {
    applied: BTreeMap<String, Applied>,
    last_problems: Vec<String>,
}

impl Policing {
    /// Reads the policing columns of `data` and brings the datapath in
    /// line: new policers get a datapath meter, changed ones are
    /// reconfigured, removed ones (or ports that went away) give theirs back.
    pub fn reconcile(&mut self, switch: &Switch, data: &Data) {
        let cfg = from_data(data);
        if cfg.problems != self.last_problems {
            for p in &cfg.problems {
                warn!("configuration: {p}");
            }
            self.last_problems = cfg.problems.clone();
        }
        let ports: BTreeMap<String, DpPortNo> = switch
            .port_list()
            .into_iter()
            .map(|p| (p.name, p.dp_port))
            .collect();
        self.apply(switch, &cfg, &ports);
    }

    fn apply(&mut self, switch: &Switch, cfg: &PolicingConfig, ports: &BTreeMap<String, DpPortNo>) {
        let meters = switch.dp.meters();
        // Drop what is no longer wanted or whose port changed.
        let names: Vec<String> = self.applied.keys().cloned().collect();
        for name in names {
            let keep = match (
                self.applied.get(&name),
                ports.get(&name),
                cfg.ifaces.get(&name),
            ) {
                (Some(a), Some(dp), Some(w)) => a.dp_port == *dp && a.wanted == *w,
                _ => false,
            };
            if keep {
                continue;
            }
            if let Some(a) = self.applied.remove(&name) {
                if ports.get(&name) == Some(&a.dp_port) {
                    switch.dp.set_port_policing(a.dp_port, None, None);
                }
                for id in [a.ingress, a.egress].into_iter().flatten() {
                    meters.free(id);
                }
                info!("policing removed from {name}");
            }
        }
        for (name, w) in &cfg.ifaces {
            if self.applied.contains_key(name) {
                continue;
            }
            let Some(&dp_port) = ports.get(name) else {
                continue;
            };
            let make = |r: Option<Rate>| -> Option<u32> {
                let r = r?;
                let id = meters.alloc()?;
                meters.set(id, &LimiterConfig::policer(r.bps, r.burst_bits), true);
                Some(id)
            };
            let ingress = make(w.ingress);
            let egress = make(w.egress);
            switch.dp.set_port_policing(dp_port, ingress, egress);
            info!(
                "policing {name}: ingress {:?}, egress {:?}",
                w.ingress, w.egress
            );
            self.applied.insert(
                name.clone(),
                Applied {
                    dp_port,
                    wanted: *w,
                    ingress,
                    egress,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::{Value, json};

    /// A DB with interface `eth1` on port `eth1`, its ingress columns set,
    /// and optionally a QoS row on the port.
    fn data(iface_rate: i64, iface_burst: i64, qos: Option<(&str, &[(&str, &str)])>) -> Data {
        let db = ovsdb::Db::in_memory();
        let mut ops = vec![
            json!("Open_vSwitch"),
            json!({"op": "insert", "table": "Interface", "uuid-name": "i1",
                   "row": {"name": "eth1", "ingress_policing_rate": iface_rate,
                           "ingress_policing_burst": iface_burst}}),
        ];
        let mut port = json!({"name": "eth1", "interfaces": ["named-uuid", "i1"]});
        if let Some((t, oc)) = qos {
            let pairs: Vec<Value> = oc.iter().map(|(k, v)| json!([k, v])).collect();
            ops.push(json!({"op": "insert", "table": "QoS", "uuid-name": "q1",
                            "row": {"type": t, "other_config": ["map", pairs]}}));
            port["qos"] = json!(["named-uuid", "q1"]);
        }
        ops.push(json!({"op": "insert", "table": "Port", "uuid-name": "p1", "row": port}));
        // Rows nothing refers to are collected: hang the port off a bridge.
        ops.push(json!({"op": "insert", "table": "Bridge", "uuid-name": "b1",
                        "row": {"name": "br0", "ports": ["named-uuid", "p1"]}}));
        ops.push(json!({"op": "update", "table": "Open_vSwitch", "where": [],
                        "row": {"bridges": ["named-uuid", "b1"]}}));
        let r = db.transact(Value::Array(ops));
        assert!(r.iter().all(|r| r.get("error").is_none()), "{r:?}");
        db.snapshot()
    }

    #[test]
    fn ingress_policing_is_read_in_kbps_with_ovs_default_burst() {
        let c = from_data(&data(10_000, 0, None));
        let p = c.ifaces["eth1"];
        assert_eq!(
            p.ingress,
            Some(Rate {
                bps: 10_000_000,
                burst_bits: 8_000_000
            })
        );
        assert_eq!(p.egress, None);
        let c = from_data(&data(0, 500, None));
        assert!(c.ifaces.is_empty());
    }

    #[test]
    fn egress_policer_reads_cir_and_cbs_in_bytes() {
        let c = from_data(&data(
            0,
            0,
            Some(("egress-policer", &[("cir", "125000"), ("cbs", "2000")])),
        ));
        assert_eq!(
            c.ifaces["eth1"].egress,
            Some(Rate {
                bps: 1_000_000,
                burst_bits: 16_000
            })
        );
    }

    #[test]
    fn bad_or_unsupported_qos_is_reported_not_applied() {
        let c = from_data(&data(0, 0, Some(("egress-policer", &[("cir", "lots")]))));
        assert!(c.ifaces.is_empty());
        assert_eq!(c.problems.len(), 1);
        let c = from_data(&data(0, 0, Some(("linux-htb", &[]))));
        assert!(c.ifaces.is_empty());
        assert!(c.problems[0].contains("linux-htb"));
    }
}
