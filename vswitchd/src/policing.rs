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
//! after each configuration pass; it reads the columns it needs itself.

use std::collections::BTreeMap;

use datapath::meter::LimiterConfig;
use flows::DpPortNo;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::switch::Switch;

// Small readers of OVSDB JSON, kept here so that this module depends only
// on the wire format, not on the daemon's config types.

type Row = serde_json::Map<String, Value>;

/// Rows of a `select` result by uuid.
fn rows_from_select(result: &Value) -> BTreeMap<String, Row> {
    let mut out = BTreeMap::new();
    for r in result
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(obj) = r.as_object()
            && let Some(u) = obj.get("_uuid").and_then(uuid_of)
        {
            out.insert(u, obj.clone());
        }
    }
    out
}

/// The elements of a set-typed value (a bare atom is a set of one).
fn set_elems(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, elems]) if tag == "set" => elems
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => vec![v],
    }
}

fn uuid_of(v: &Value) -> Option<String> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, u]) if tag == "uuid" => u.as_str().map(str::to_string),
        _ => None,
    }
}

fn opt_int(v: &Value) -> Option<i64> {
    set_elems(v).first().and_then(|x| x.as_i64())
}

fn opt_str(v: &Value) -> Option<String> {
    set_elems(v)
        .first()
        .and_then(|x| x.as_str())
        .map(str::to_string)
}

/// A string→string map column.
fn map_pairs(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some([tag, pairs]) = v.as_array().map(Vec::as_slice)
        && tag == "map"
    {
        for p in pairs.as_array().into_iter().flatten() {
            if let Some([k, v]) = p.as_array().map(Vec::as_slice)
                && let (Some(k), Some(v)) = (k.as_str(), v.as_str())
            {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    out
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

/// The `transact` that reads the policing columns.
pub fn select_ops() -> Value {
    json!([
        "Open_vSwitch",
        {"op": "select", "table": "Port", "where": [], "columns": ["_uuid", "name", "interfaces", "qos"]},
        {"op": "select", "table": "Interface", "where": [],
         "columns": ["_uuid", "name", "ingress_policing_rate", "ingress_policing_burst"]},
        {"op": "select", "table": "QoS", "where": [], "columns": ["_uuid", "type", "other_config"]},
    ])
}

fn nonneg(v: Option<&Value>) -> u64 {
    v.and_then(opt_int).unwrap_or(0).max(0) as u64
}

/// Builds the policing configuration from the results of [`select_ops`].
pub fn from_select_results(results: &[Value]) -> PolicingConfig {
    let get = |i: usize| results.get(i).map(rows_from_select).unwrap_or_default();
    let (ports, ifaces, qoses) = (get(0), get(1), get(2));
    let mut cfg = PolicingConfig::default();
    let mut name_of = BTreeMap::new();
    for (uuid, row) in &ifaces {
        let name = row.get("name").and_then(opt_str).unwrap_or_default();
        name_of.insert(uuid.clone(), name.clone());
        let rate = nonneg(row.get("ingress_policing_rate"));
        if rate > 0 {
            let burst = match nonneg(row.get("ingress_policing_burst")) {
                0 => DEFAULT_INGRESS_BURST_KBITS,
                b => b,
            };
            cfg.ifaces.entry(name).or_default().ingress = Some(Rate {
                bps: rate.saturating_mul(1000),
                burst_bits: burst.saturating_mul(1000),
            });
        }
    }
    for port in ports.values() {
        let Some(qos_uuid) = port
            .get("qos")
            .and_then(|q| set_elems(q).into_iter().next())
            .and_then(uuid_of)
        else {
            continue;
        };
        let Some(qos) = qoses.get(&qos_uuid) else {
            continue;
        };
        let kind = qos.get("type").and_then(opt_str).unwrap_or_default();
        if kind != "egress-policer" {
            if !kind.is_empty() {
                cfg.problems.push(format!(
                    "QoS type {kind} is not supported (only egress-policer)"
                ));
            }
            continue;
        }
        let oc = qos.get("other_config").map(map_pairs).unwrap_or_default();
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
        for i in port.get("interfaces").map(set_elems).unwrap_or_default() {
            if let Some(name) = uuid_of(i).and_then(|u| name_of.get(&u)) {
                cfg.ifaces.entry(name.clone()).or_default().egress = Some(rate);
            }
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
    /// Reads the policing columns and brings the datapath in line: new
    /// policers get a datapath meter, changed ones are reconfigured, removed
    /// ones (or ports that went away) give theirs back.
    pub fn reconcile(&mut self, switch: &Switch, db: &ovsdb::Db) {
        let results = db.transact(select_ops());
        let cfg = from_select_results(&results);
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

    fn results(
        iface_rate: i64,
        iface_burst: i64,
        qos: Option<(&str, &[(&str, &str)])>,
    ) -> Vec<Value> {
        let qos_rows: Vec<Value> = qos
            .map(|(t, oc)| {
                let pairs: Vec<Value> = oc.iter().map(|(k, v)| json!([k, v])).collect();
                vec![json!({"_uuid": ["uuid", "q1"], "type": t, "other_config": ["map", pairs]})]
            })
            .unwrap_or_default();
        let port_qos = if qos.is_some() {
            json!(["uuid", "q1"])
        } else {
            json!(["set", []])
        };
        vec![
            json!({"rows": [{"_uuid": ["uuid", "p1"], "name": "eth1",
                             "interfaces": ["uuid", "i1"], "qos": port_qos}]}),
            json!({"rows": [{"_uuid": ["uuid", "i1"], "name": "eth1",
                             "ingress_policing_rate": iface_rate,
                             "ingress_policing_burst": iface_burst}]}),
            json!({"rows": qos_rows}),
        ]
    }

    #[test]
    fn ingress_policing_is_read_in_kbps_with_ovs_default_burst() {
        let c = from_select_results(&results(10_000, 0, None));
        let p = c.ifaces["eth1"];
        assert_eq!(
            p.ingress,
            Some(Rate {
                bps: 10_000_000,
                burst_bits: 8_000_000
            })
        );
        assert_eq!(p.egress, None);
        let c = from_select_results(&results(0, 500, None));
        assert!(c.ifaces.is_empty());
    }

    #[test]
    fn egress_policer_reads_cir_and_cbs_in_bytes() {
        let c = from_select_results(&results(
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
        let c = from_select_results(&results(0, 0, Some(("egress-policer", &[("cir", "lots")]))));
        assert!(c.ifaces.is_empty());
        assert_eq!(c.problems.len(), 1);
        let c = from_select_results(&results(0, 0, Some(("linux-htb", &[]))));
        assert!(c.ifaces.is_empty());
        assert!(c.problems[0].contains("linux-htb"));
    }
}
