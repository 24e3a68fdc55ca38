//! An in-memory switch for tests of OpenFlow clients (ofctl, ovs-ofctl,
//! controllers): a flow "table" that is a Vec of accepted flow_mods, served
//! over TCP or a unix socket by [`OfConnection`]s.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::conn::{ConnConfig, OfConnection, SwitchAgent};
use crate::error::OfError;
use crate::message::*;

/// A "switch" whose flow table is a Vec of the flow_mods it accepted.
#[derive(Default, Debug)]
pub struct MemAgent {
    pub flows: Vec<FlowMod>,
    /// Every call, in order: "flow_mod", "barrier", ...
    pub calls: Vec<&'static str>,
    pub packet_outs: Vec<PacketOut>,
    pub group_mods: Vec<GroupMod>,
    pub port_mods: Vec<PortMod>,
    /// Refuse adds beyond this many flows with OFPFMFC_TABLE_FULL.
    pub capacity: Option<usize>,
    /// The Geneve TLV map.
    pub tlv: flows::tlv::TlvMap,
    keys: std::collections::HashSet<(u8, u32, flows::Match)>,
}

impl MemAgent {
    /// An agent whose table holds at most `n` flows.
    pub fn with_capacity(n: usize) -> MemAgent {
        MemAgent {
            capacity: Some(n),
            ..MemAgent::default()
        }
    }

    fn reindex(&mut self) {
        self.keys = self
            .flows
            .iter()
            .map(|f| (f.table_id, f.priority, f.m))
            .collect();
    }
}

impl SwitchAgent for MemAgent {
    fn features(&self) -> Features {
        Features {
            datapath_id: 0x1234,
            n_buffers: 0,
            n_tables: 254,
            auxiliary_id: 0,
            capabilities: 0x4f,
            actions: 0xfff,
            ports: vec![PortDesc {
                port_no: 1,
                hw_addr: [2, 0, 0, 0, 0, 1],
                name: "p1".into(),
                ..PortDesc::default()
            }],
        }
    }

    fn flow_mod(&mut self, fm: FlowMod) -> Result<(), OfError> {
        self.calls.push("flow_mod");
        match fm.command {
            FlowModCommand::Add => {
                if self.capacity.is_some_and(|c| self.flows.len() >= c) {
                    return Err(OfError::TableFull);
                }
                let key = (fm.table_id, fm.priority, fm.m);
                if !self.keys.insert(key) {
                    self.flows.retain(|f| (f.table_id, f.priority, f.m) != key);
                }
                self.flows.push(fm);
            }
            FlowModCommand::Delete => {
                self.flows.retain(|f| !f.m.is_subset_of(&fm.m));
                self.reindex();
            }
            FlowModCommand::DeleteStrict => {
                self.flows
                    .retain(|f| !(f.m == fm.m && f.priority == fm.priority));
                self.reindex();
            }
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                for f in &mut self.flows {
                    if f.m.is_subset_of(&fm.m) {
                        f.actions = fm.actions.clone();
                    }
                }
            }
        }
        Ok(())
    }

    fn group_mod(&mut self, gm: GroupMod) -> Result<(), OfError> {
        self.calls.push("group_mod");
        self.group_mods.push(gm);
        Ok(())
    }

    fn port_mod(&mut self, pm: PortMod) -> Result<(), OfError> {
        self.calls.push("port_mod");
        if pm.port_no != 1 {
            return Err(OfError::PortModBadPort);
        }
        self.port_mods.push(pm);
        Ok(())
    }

    /// Atomic when asked: the flows and groups are restored if any
    /// message fails.
    fn bundle_commit(
        &mut self,
        msgs: &[crate::conn::BundledMod],
        atomic: bool,
    ) -> Result<(), (usize, OfError)> {
        use crate::conn::BundledMod;
        self.calls.push("bundle_commit");
        let saved = (self.flows.clone(), self.keys.clone(), self.group_mods.len());
        for (i, m) in msgs.iter().enumerate() {
            let r = match m {
                BundledMod::Flow(fm) => self.flow_mod(fm.as_ref().clone()),
                BundledMod::Group(gm) => self.group_mod(gm.clone()),
                BundledMod::Port(pm) => self.port_mod(pm.clone()),
            };
            if let Err(e) = r {
                if atomic {
                    (self.flows, self.keys) = (saved.0, saved.1);
                    self.group_mods.truncate(saved.2);
                }
                return Err((i, e));
            }
        }
        Ok(())
    }

    fn packet_out(&mut self, po: PacketOut) -> Result<(), OfError> {
        self.calls.push("packet_out");
        self.packet_outs.push(po);
        Ok(())
    }

    fn multipart(&mut self, req: &MultipartRequestBody) -> Result<MultipartReplyBody, OfError> {
        self.calls.push("multipart");
        Ok(match req {
            MultipartRequestBody::Desc => MultipartReplyBody::Desc(SwitchDesc {
                mfr_desc: "ferrovs".into(),
                hw_desc: "test".into(),
                sw_desc: "0.1".into(),
                serial_num: "None".into(),
                dp_desc: "None".into(),
            }),
            MultipartRequestBody::Flow(r) => MultipartReplyBody::Flow(
                self.flows
                    .iter()
                    .filter(|f| f.m.is_subset_of(&r.match_))
                    .map(|f| FlowStats {
                        table_id: f.table_id,
                        duration_sec: 1,
                        duration_nsec: 0,
                        priority: f.priority as u16,
                        idle_timeout: f.idle_timeout,
                        hard_timeout: f.hard_timeout,
                        flags: 0,
                        cookie: f.cookie,
                        packet_count: 0,
                        byte_count: 0,
                        match_: f.m,
                        tun_metadata: f.tun_metadata.clone(),
                        actions: f.actions.clone(),
                    })
                    .collect(),
            ),
            MultipartRequestBody::Aggregate(_) => MultipartReplyBody::Aggregate(AggregateStats {
                packet_count: 0,
                byte_count: 0,
                flow_count: self.flows.len() as u32,
            }),
            MultipartRequestBody::Table => MultipartReplyBody::Table(vec![TableStats {
                table_id: 0,
                name: "classifier".into(),
                max_entries: 1_000_000,
                active_count: self.flows.len() as u32,
                lookup_count: 0,
                matched_count: 0,
            }]),
            MultipartRequestBody::PortStats { .. } => {
                MultipartReplyBody::PortStats(vec![PortStats {
                    port_no: 1,
                    rx_packets: 10,
                    tx_packets: 20,
                    rx_crc_err: 3,
                    ..PortStats::default()
                }])
            }
            MultipartRequestBody::PortDesc => MultipartReplyBody::PortDesc(self.features().ports),
            MultipartRequestBody::Group { .. } => MultipartReplyBody::Group(vec![]),
            MultipartRequestBody::GroupDesc => MultipartReplyBody::GroupDesc(vec![]),
            MultipartRequestBody::Meter { .. }
            | MultipartRequestBody::MeterConfig { .. }
            | MultipartRequestBody::MeterFeatures => return Err(OfError::BadMultipart),
            MultipartRequestBody::TableFeatures => {
                MultipartReplyBody::TableFeatures(vec![TableFeatures {
                    table_id: 0,
                    name: "classifier".into(),
                    metadata_match: u64::MAX,
                    metadata_write: u64::MAX,
                    config: 0,
                    max_entries: 1_000_000,
                }])
            }
        })
    }

    fn barrier(&mut self) {
        self.calls.push("barrier");
    }

    fn tlv_table_mod(&mut self, m: crate::msg::tlv::TlvTableMod) -> Result<(), OfError> {
        self.calls.push("tlv_table_mod");
        self.tlv
            .apply(m.command, &m.mappings, |_| false)
            .map_err(crate::convert::tlv_error)
    }

    fn tlv_table(&mut self) -> Result<crate::msg::tlv::TlvTableReply, OfError> {
        Ok(crate::msg::tlv::TlvTableReply {
            max_option_space: flows::tlv::MAX_OPTION_SPACE,
            max_fields: flows::tlv::MAX_FIELDS,
            mappings: self.tlv.mappings().copied().collect(),
        })
    }
}

fn serve_stream<S: Read + Write>(mut s: S, agent: Arc<Mutex<MemAgent>>) {
    let mut c = OfConnection::new(ConnConfig::default(), 0);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let out = c.take_output();
        if !out.is_empty() && s.write_all(&out).is_err() {
            break;
        }
        if c.closed().is_some() {
            break;
        }
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Ok(mut a) = agent.lock() else { break };
        c.receive(&buf[..n], &mut *a, 0);
    }
}

/// Serves `agent` on an ephemeral port of 127.0.0.1 (a thread per
/// connection, forever); returns the port.
pub fn serve_tcp(agent: Arc<Mutex<MemAgent>>) -> std::io::Result<u16> {
    serve_tcp_on(agent, 0)
}

/// Serves `agent` on 127.0.0.1:`port` (0 = ephemeral); returns the port.
pub fn serve_tcp_on(agent: Arc<Mutex<MemAgent>>, port: u16) -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { break };
            let agent = agent.clone();
            std::thread::spawn(move || serve_stream(s, agent));
        }
    });
    Ok(port)
}

/// Serves `agent` on a unix socket at `path`.
pub fn serve_unix(agent: Arc<Mutex<MemAgent>>, path: &std::path::Path) -> std::io::Result<()> {
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { break };
            let agent = agent.clone();
            std::thread::spawn(move || serve_stream(s, agent));
        }
    });
    Ok(())
}
