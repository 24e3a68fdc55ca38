//! `ofctl`: ovs-ofctl's commands, syntax and output against a ferrovs
//! bridge (or any OpenFlow 1.0/1.3 switch).

pub mod groups;
pub mod meters;
pub mod print;
pub mod target;
pub mod tlv;

use std::collections::HashMap;
use std::io::Write as _;

use anyhow::{Context, Result, anyhow, bail};
use flows::table::{FlowMod, FlowModCommand};
use flows::text::{format_flow_mod, parse_actions, parse_flow_file, parse_flow_mod, parse_port};
use openflow::consts::{NO_BUFFER, OFP10_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION};
use openflow::convert::flow_stats_to_rule;
use openflow::*;

/// Command-line options shared by every command.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// HELLO version bitmap.
    pub versions: u32,
    pub strict: bool,
    pub no_stats: bool,
    /// `--bundle`: flow and group changes go in one atomic, ordered bundle.
    pub bundle: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            versions: (1 << OFP10_VERSION) | (1 << OFP13_VERSION),
            strict: false,
            no_stats: false,
            bundle: false,
        }
    }
}

/// Parses `-O OpenFlow10,OpenFlow13` into a version bitmap.
pub fn parse_protocols(s: &str) -> Result<u32> {
    let mut v = 0;
    for p in s.split(',') {
        v |= match p {
            "OpenFlow10" => 1 << OFP10_VERSION,
            "OpenFlow13" => 1 << OFP13_VERSION,
            "OpenFlow14" => 1 << OFP14_VERSION,
            "OpenFlow15" => 1 << OFP15_VERSION,
            _ => bail!(
                "{p}: unsupported OpenFlow version (use OpenFlow10, OpenFlow13, OpenFlow14 or OpenFlow15)"
            ),
        };
    }
    Ok(v)
}

const USAGE: &str = "\
ofctl: OpenFlow switch management utility (ovs-ofctl syntax)
usage: ofctl [OPTIONS] COMMAND [ARG...]
  show SWITCH                 show OpenFlow information
  dump-flows SWITCH [FLOW]    print matching FLOWs
  dump-aggregate SWITCH [FLOW]
  add-flow SWITCH FLOW        add flow described by FLOW
  add-flows SWITCH FILE       add flows from FILE
  mod-flows SWITCH FLOW       modify actions of matching FLOWs
  del-flows SWITCH [FLOW]     delete matching FLOWs
  replace-flows SWITCH FILE   replace flows with those in FILE
  diff-flows SOURCE1 SOURCE2  compare flows from two sources
  dump-ports SWITCH [PORT]    print port statistics
  dump-ports-desc SWITCH      print port descriptions
  dump-tables SWITCH          print table statistics
  mod-port SWITCH PORT ACTION up|down|receive|no-receive|forward|no-forward|packet-in|no-packet-in
  packet-out SWITCH \"in_port=P packet=HEX actions=A\"
  add-group SWITCH GROUP / mod-group SWITCH GROUP / del-groups SWITCH [GROUP]
  dump-groups SWITCH          print group descriptions
  add-meter SWITCH METER / mod-meter SWITCH METER / del-meters SWITCH [METER]
  dump-meters SWITCH [METER]  print meter configuration
  meter-stats SWITCH [METER]  print meter statistics
  meter-features SWITCH       print meter features
  add-tlv-map SWITCH MAP      add TLV option mappings ({class=C,type=T,len=L}->tun_metadataN,...)
  del-tlv-map SWITCH [MAP]    delete those TLV mappings (all without MAP)
  dump-tlv-map SWITCH         print the TLV option mappings
  monitor SWITCH              print packet-ins, flow-removed and port-status
SWITCH is a bridge name (socket $FERROVS_RUNDIR/BRIDGE.mgmt), unix:PATH or tcp:IP:PORT.
Options: -O OpenFlow10|OpenFlow13|OpenFlow14|OpenFlow15, --strict, --no-stats,
  --bundle (flow and group changes as one atomic bundle), -h";

/// Runs ofctl with `args` (without the program name); returns the exit code.
pub fn main_with_args(args: &[String]) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("ofctl: {e:#}");
            1
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let mut opts = Options::default();
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-O" | "--protocols" => {
                let v = it
                    .next()
                    .ok_or_else(|| anyhow!("-O requires an argument"))?;
                opts.versions = parse_protocols(v)?;
            }
            "--strict" => opts.strict = true,
            "--bundle" => opts.bundle = true,
            "--no-stats" => opts.no_stats = true,
            "--names" | "--no-names" | "--sort" | "--readd" => {}
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--protocols=") => {
                opts.versions = parse_protocols(&s["--protocols=".len()..])?
            }
            s if s.starts_with("-O") && s.len() > 2 => opts.versions = parse_protocols(&s[2..])?,
            s if s.starts_with('-') && s.len() > 1 => bail!("unknown option {s}"),
            _ => pos.push(a.as_str()),
        }
    }
    if opts.bundle && opts.versions & !(1 << OFP10_VERSION) == 0 {
        // As ovs-ofctl: bundles need 1.4 (or 1.3's extension), enabled
        // without an explicit -O.
        opts.versions |= 1 << OFP14_VERSION;
    }
    let Some((&cmd, rest)) = pos.split_first() else {
        bail!("missing command name; use --help for help");
    };
    let need = |n: usize| -> Result<()> {
        if rest.len() < n {
            bail!("'{cmd}' command requires at least {n} arguments");
        }
        Ok(())
    };
    need(1)?;
    let target = rest[0];
    let arg = rest.get(1).copied();
    match cmd {
        "show" => show(&mut connect(target, &opts)?),
        "dump-flows" => dump_flows(&mut connect(target, &opts)?, arg, &opts),
        "dump-aggregate" => dump_aggregate(&mut connect(target, &opts)?, arg),
        "add-flow" => {
            need(2)?;
            let fm = parse(arg.unwrap_or(""), FlowModCommand::Add)?;
            send_flow_mods(&mut connect(target, &opts)?, &[fm], false, &opts)
        }
        "mod-flows" => {
            need(2)?;
            let c = if opts.strict {
                FlowModCommand::ModifyStrict
            } else {
                FlowModCommand::Modify
            };
            let fm = parse(arg.unwrap_or(""), c)?;
            send_flow_mods(&mut connect(target, &opts)?, &[fm], false, &opts)
        }
        "del-flows" => {
            let c = if opts.strict {
                FlowModCommand::DeleteStrict
            } else {
                FlowModCommand::Delete
            };
            let fm = parse(arg.unwrap_or(""), c)?;
            send_flow_mods(&mut connect(target, &opts)?, &[fm], false, &opts)
        }
        "add-flows" => {
            need(2)?;
            let fms = read_flow_file(arg.unwrap_or(""))?;
            send_flow_mods(&mut connect(target, &opts)?, &fms, true, &opts)
        }
        "replace-flows" => {
            need(2)?;
            let fms = read_flow_file(arg.unwrap_or(""))?;
            replace_flows(&mut connect(target, &opts)?, fms, &opts)
        }
        "diff-flows" => {
            need(2)?;
            diff_flows(target, arg.unwrap_or(""), &opts)
        }
        "dump-ports" => dump_ports(&mut connect(target, &opts)?, arg),
        "dump-ports-desc" => dump_ports_desc(&mut connect(target, &opts)?),
        "dump-tables" => dump_tables(&mut connect(target, &opts)?),
        "mod-port" => {
            need(3)?;
            mod_port(&mut connect(target, &opts)?, rest[1], rest[2])
        }
        "packet-out" => {
            need(2)?;
            packet_out(&mut connect(target, &opts)?, &rest[1..])
        }
        "add-group" | "mod-group" => {
            need(2)?;
            let g = groups::parse_group_mod(arg.unwrap_or("")).map_err(|e| anyhow!(e))?;
            let command = if cmd == "add-group" {
                GroupModCommand::Add
            } else {
                GroupModCommand::Modify
            };
            group_mod(&mut connect(target, &opts)?, command, g, &opts)
        }
        "del-groups" => {
            let g = groups::parse_group_delete(arg).map_err(|e| anyhow!(e))?;
            group_mod(
                &mut connect(target, &opts)?,
                GroupModCommand::Delete,
                g,
                &opts,
            )
        }
        "dump-groups" => dump_groups(&mut connect(target, &opts)?),
        "add-meter" | "mod-meter" => {
            need(2)?;
            let m = meters::parse_meter_mod(arg.unwrap_or("")).map_err(|e| anyhow!(e))?;
            let command = if cmd == "add-meter" {
                MeterModCommand::Add
            } else {
                MeterModCommand::Modify
            };
            meter_mod(&mut connect(target, &opts)?, command, m)
        }
        "del-meters" | "del-meter" => {
            let id = meters::parse_meter_select(arg).map_err(|e| anyhow!(e))?;
            let m = flows::meter::Meter {
                id,
                flags: flows::meter::MeterFlags(0),
                bands: Vec::new(),
            };
            meter_mod(&mut connect(target, &opts)?, MeterModCommand::Delete, m)
        }
        "dump-meters" | "dump-meter" | "meter-stats" | "meter-features" => {
            let id = meters::parse_meter_select(arg).map_err(|e| anyhow!(e))?;
            meter_request(&mut connect(target, &opts)?, cmd, id)
        }
        "add-tlv-map" | "del-tlv-map" => {
            let (command, maps) = match (cmd, arg) {
                ("add-tlv-map", None) => bail!("'{cmd}' command requires at least 2 arguments"),
                ("add-tlv-map", Some(a)) => (flows::tlv::TlvCommand::Add, a),
                (_, Some(a)) => (flows::tlv::TlvCommand::Delete, a),
                (_, None) => (flows::tlv::TlvCommand::Clear, ""),
            };
            let mappings = flows::tlv::parse_tlv_maps(maps).map_err(|e| anyhow!(e))?;
            let m = openflow::msg::tlv::TlvTableMod { command, mappings };
            let mut c = connect(target, &opts)?;
            c.send(&Message::Nicira(openflow::msg::nicira::NxMsg::TlvTableMod(
                m,
            )))
            .map_err(|e| anyhow!("{e}"))?;
            barrier_collect(&mut c)
        }
        "dump-tlv-map" => {
            let mut c = connect(target, &opts)?;
            let req = Message::Nicira(openflow::msg::nicira::NxMsg::TlvTableRequest);
            match c.transact(&req) {
                Ok(Message::Nicira(openflow::msg::nicira::NxMsg::TlvTableReply(r))) => {
                    println!("{}", tlv::reply_text(&r, c.version(), c.last_xid()));
                    Ok(())
                }
                Ok(_) => bail!("unexpected reply to NXT_TLV_TABLE_REQUEST"),
                Err(e) => Err(of_err(&c, e)),
            }
        }
        "monitor" => monitor(&mut connect(target, &opts)?),
        _ => bail!("unknown command '{cmd}'; use --help for help"),
    }
}

fn connect(target: &str, opts: &Options) -> Result<OfClient> {
    let resolved = target::resolve(target);
    OfClient::connect(&resolved, opts.versions).map_err(|e| match e {
        ClientError::Connect { reason, .. } => {
            anyhow!("{target}: failed to connect to socket ({reason})")
        }
        other => anyhow!("{target}: {other}"),
    })
}

fn parse(s: &str, c: FlowModCommand) -> Result<FlowMod> {
    parse_flow_mod(s, c).map_err(|e| anyhow!("{e}"))
}

fn read_flow_file(path: &str) -> Result<Vec<FlowMod>> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("{path}: open failed"))?
    };
    parse_flow_file(&text, FlowModCommand::Add).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| format!("{path}:{e}")).collect();
        anyhow!("{}", lines.join("\n"))
    })
}

/// Turns an OFPT_ERROR into an error that prints decoded.
fn of_err(c: &OfClient, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Of { msg, .. } => anyhow!("{}", print::error(&msg, c.version(), 0)),
        other => anyhow!("{other}"),
    }
}

/// Sends flow_mods pipelined, then one barrier; reports every error.
/// With `--bundle`, they go in one atomic bundle instead.
fn send_flow_mods(c: &mut OfClient, fms: &[FlowMod], progress: bool, opts: &Options) -> Result<()> {
    if opts.bundle {
        let msgs: Vec<Message> = fms
            .iter()
            .map(|fm| Message::FlowMod(FlowModMsg::new(fm.clone())))
            .collect();
        return send_bundle(c, &msgs);
    }
    const CHUNK: usize = 4096;
    let big = progress && fms.len() >= 20_000;
    let mut buf = Vec::with_capacity(CHUNK * 128);
    for (i, fm) in fms.iter().enumerate() {
        let msg = Message::FlowMod(FlowModMsg::new(fm.clone()));
        c.encode_into(&msg, &mut buf)
            .map_err(|e| anyhow!("{}: {e}", flows::text::excerpt(&format_flow_mod(fm))))?;
        if (i + 1) % CHUNK == 0 {
            c.send_raw(&buf).map_err(|e| anyhow!("{e}"))?;
            buf.clear();
            if big && (i + 1) % (CHUNK * 8) == 0 {
                eprintln!("ofctl: sent {} of {} flows", i + 1, fms.len());
            }
        }
    }
    c.send_raw(&buf).map_err(|e| anyhow!("{e}"))?;
    barrier_collect(c)?;
    if big {
        eprintln!("ofctl: {} flows added", fms.len());
    }
    Ok(())
}

/// Sends `msgs` as one bundle (ATOMIC | ORDERED): open, add each (the
/// added message and its wrapper share an xid), commit. Prints every error
/// and fails if the commit did not succeed.
fn send_bundle(c: &mut OfClient, msgs: &[Message]) -> Result<()> {
    if c.version() == OFP10_VERSION {
        bail!("bundles require OpenFlow 1.3 or later (use -O OpenFlow14)");
    }
    const BUNDLE_ID: u32 = 0;
    let flags = bundle_ctrl::ATOMIC | bundle_ctrl::ORDERED;
    let ctrl = |ctrl_type| {
        Message::BundleControl(BundleCtrl {
            bundle_id: BUNDLE_ID,
            ctrl_type,
            flags,
        })
    };
    let open = c
        .send(&ctrl(bundle_ctrl::OPEN_REQUEST))
        .map_err(|e| anyhow!("{e}"))?;
    let version = c.version();
    let mut buf = Vec::new();
    for m in msgs {
        let xid = c.alloc_xid();
        let inner = openflow::encode(m, version, xid).map_err(|e| anyhow!("{e}"))?;
        let add = Message::BundleAddMessage(BundleAdd {
            bundle_id: BUNDLE_ID,
            flags,
            message: inner,
        });
        buf.extend_from_slice(&openflow::encode(&add, version, xid).map_err(|e| anyhow!("{e}"))?);
        if buf.len() >= 1 << 20 {
            c.send_raw(&buf).map_err(|e| anyhow!("{e}"))?;
            buf.clear();
        }
    }
    c.send_raw(&buf).map_err(|e| anyhow!("{e}"))?;
    let commit = c
        .send(&ctrl(bundle_ctrl::COMMIT_REQUEST))
        .map_err(|e| anyhow!("{e}"))?;
    let mut errors = Vec::new();
    loop {
        let (h, m) = c.recv().map_err(|e| anyhow!("{e}"))?;
        match m {
            Message::BundleControl(r) if h.xid == commit => {
                if r.ctrl_type != bundle_ctrl::COMMIT_REPLY {
                    errors.push(format!("unexpected bundle reply type {}", r.ctrl_type));
                }
                break;
            }
            Message::Error(e) => {
                errors.push(print::error(&e, c.version(), h.xid));
                if h.xid == commit || h.xid == open {
                    break;
                }
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("\n"))
    }
}

/// Sends a barrier and waits for it, printing every error that arrives
/// first; fails if there was any.
fn barrier_collect(c: &mut OfClient) -> Result<()> {
    let xid = c
        .send(&Message::BarrierRequest)
        .map_err(|e| anyhow!("{e}"))?;
    let mut errors = Vec::new();
    loop {
        let (h, m) = c.recv().map_err(|e| anyhow!("{e}"))?;
        match m {
            Message::BarrierReply if h.xid == xid => break,
            Message::Error(e) => errors.push(print::error(&e, c.version(), h.xid)),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("\n"))
    }
}

fn stats_request(fm: &FlowMod) -> FlowStatsRequest {
    FlowStatsRequest {
        table_id: fm.table_id,
        out_port: fm.out_port,
        out_group: fm.out_group,
        cookie: fm.cookie,
        cookie_mask: fm.cookie_mask,
        match_: fm.m,
    }
}

fn fetch_flows(c: &mut OfClient, filter: Option<&str>) -> Result<Vec<FlowStats>> {
    let fm = parse(filter.unwrap_or(""), FlowModCommand::Delete)?;
    match c.multipart(MultipartRequestBody::Flow(stats_request(&fm))) {
        Ok(MultipartReplyBody::Flow(l)) => Ok(l),
        Ok(_) => bail!("unexpected reply to flow stats request"),
        Err(e) => Err(of_err(c, e)),
    }
}

fn dump_flows(c: &mut OfClient, filter: Option<&str>, opts: &Options) -> Result<()> {
    let flows = fetch_flows(c, filter)?;
    let mut out = std::io::stdout().lock();
    if !opts.no_stats {
        writeln!(
            out,
            "{}",
            print::header("OFPST_FLOW reply", c.version(), c.last_xid())
        )?;
    }
    for f in &flows {
        writeln!(out, "{}", print::flow_line(f, opts.no_stats))?;
    }
    Ok(())
}

fn dump_aggregate(c: &mut OfClient, filter: Option<&str>) -> Result<()> {
    let fm = parse(filter.unwrap_or(""), FlowModCommand::Delete)?;
    match c.multipart(MultipartRequestBody::Aggregate(stats_request(&fm))) {
        Ok(MultipartReplyBody::Aggregate(a)) => {
            println!(
                "{} packet_count={} byte_count={} flow_count={}",
                print::header("OFPST_AGGREGATE reply", c.version(), c.last_xid()),
                a.packet_count,
                a.byte_count,
                a.flow_count
            );
            Ok(())
        }
        Ok(_) => bail!("unexpected reply to aggregate request"),
        Err(e) => Err(of_err(c, e)),
    }
}

fn port_descs(c: &mut OfClient) -> Result<Vec<PortDesc>> {
    if c.version() == OFP10_VERSION {
        match c.transact(&Message::FeaturesRequest) {
            Ok(Message::FeaturesReply(f)) => Ok(f.ports),
            Ok(_) => bail!("unexpected reply to features request"),
            Err(e) => Err(of_err(c, e)),
        }
    } else {
        match c.multipart(MultipartRequestBody::PortDesc) {
            Ok(MultipartReplyBody::PortDesc(p)) => Ok(p),
            Ok(_) => bail!("unexpected reply to port desc request"),
            Err(e) => Err(of_err(c, e)),
        }
    }
}

fn show(c: &mut OfClient) -> Result<()> {
    let f = match c.transact(&Message::FeaturesRequest) {
        Ok(Message::FeaturesReply(f)) => f,
        Ok(_) => bail!("unexpected reply to features request"),
        Err(e) => return Err(of_err(c, e)),
    };
    println!("{}", print::features(&f, c.version(), c.last_xid()));
    let ports = if c.version() == OFP10_VERSION {
        f.ports.clone()
    } else {
        let p = port_descs(c)?;
        println!(
            "{}",
            print::header("OFPST_PORT_DESC reply", c.version(), c.last_xid())
        );
        p
    };
    for p in &ports {
        println!("{}", print::port_desc(p));
    }
    if let Ok(Message::GetConfigReply(cfg)) = c.transact(&Message::GetConfigRequest) {
        let frags = match cfg.flags & 3 {
            0 => "normal",
            1 => "drop",
            2 => "reassemble",
            _ => "nx-match",
        };
        let h = print::header("OFPT_GET_CONFIG_REPLY", c.version(), c.last_xid());
        println!("{h} frags={frags} miss_send_len={}", cfg.miss_send_len);
    }
    Ok(())
}

fn dump_ports(c: &mut OfClient, port: Option<&str>) -> Result<()> {
    let port_no = match port {
        Some(p) => parse_port(p).ok_or_else(|| anyhow!("{p}: invalid port"))?,
        None => flows::action::port::ANY,
    };
    match c.multipart(MultipartRequestBody::PortStats { port_no }) {
        Ok(MultipartReplyBody::PortStats(l)) => {
            println!(
                "{} {} ports",
                print::header("OFPST_PORT reply", c.version(), c.last_xid()),
                l.len()
            );
            for p in &l {
                println!("{}", print::port_stats(p, c.version()));
            }
            Ok(())
        }
        Ok(_) => bail!("unexpected reply to port stats request"),
        Err(e) => Err(of_err(c, e)),
    }
}

fn dump_ports_desc(c: &mut OfClient) -> Result<()> {
    let ports = port_descs(c)?;
    println!(
        "{}",
        print::header("OFPST_PORT_DESC reply", c.version(), c.last_xid())
    );
    for p in &ports {
        println!("{}", print::port_desc(p));
    }
    Ok(())
}

fn dump_tables(c: &mut OfClient) -> Result<()> {
    match c.multipart(MultipartRequestBody::Table) {
        Ok(MultipartReplyBody::Table(l)) => {
            println!(
                "{}",
                print::header("OFPST_TABLE reply", c.version(), c.last_xid())
            );
            for t in &l {
                println!("{}", print::table_stats(t));
            }
            Ok(())
        }
        Ok(_) => bail!("unexpected reply to table stats request"),
        Err(e) => Err(of_err(c, e)),
    }
}

fn mod_port(c: &mut OfClient, port: &str, action: &str) -> Result<()> {
    let ports = port_descs(c)?;
    let want = parse_port(port);
    let p = ports
        .iter()
        .find(|p| Some(p.port_no) == want || p.name == port)
        .ok_or_else(|| anyhow!("{port}: couldn't find port"))?;
    let (bit, set) = match action {
        "up" => (1, false),
        "down" => (1, true),
        "receive" => (4, false),
        "no-receive" => (4, true),
        "forward" => (32, false),
        "no-forward" => (32, true),
        "packet-in" => (64, false),
        "no-packet-in" => (64, true),
        "flood" => (16, false),
        "no-flood" => (16, true),
        _ => bail!("unknown mod-port command '{action}'"),
    };
    let pm = PortMod {
        port_no: p.port_no,
        hw_addr: p.hw_addr,
        config: if set { bit } else { 0 },
        mask: bit,
        advertise: 0,
    };
    c.send(&Message::PortMod(pm)).map_err(|e| anyhow!("{e}"))?;
    barrier_collect(c)
}

fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        bail!("packet: odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("packet: invalid hex"))
        })
        .collect()
}

/// Parses `in_port=P packet=HEX actions=A` (or the old positional form
/// `IN_PORT ACTIONS PACKET`).
pub fn parse_packet_out(args: &[&str]) -> Result<PacketOut> {
    let (in_port, actions, packet) = if args.len() >= 3 {
        (args[0].to_string(), args[1].to_string(), args[2..].concat())
    } else {
        let s = args.join(" ");
        let (head, acts) = match s.split_once("actions=") {
            Some((h, a)) => (h.to_string(), a.trim().to_string()),
            None => bail!("packet-out: must specify actions"),
        };
        let mut in_port = "CONTROLLER".to_string();
        let mut packet = String::new();
        for tok in head.split([' ', ',']).filter(|t| !t.is_empty()) {
            match tok.split_once('=') {
                Some(("in_port", v)) => in_port = v.to_string(),
                Some(("packet", v)) => packet = v.to_string(),
                _ => bail!("packet-out: unknown keyword {tok}"),
            }
        }
        (in_port, acts, packet)
    };
    let in_port = parse_port(&in_port).ok_or_else(|| anyhow!("{in_port}: invalid in_port"))?;
    Ok(PacketOut {
        buffer_id: NO_BUFFER,
        in_port,
        metadata: flows::Match::catch_all(),
        actions: parse_actions(&actions).map_err(|e| anyhow!("{e}"))?,
        data: parse_hex(&packet)?,
    })
}

fn packet_out(c: &mut OfClient, args: &[&str]) -> Result<()> {
    let po = parse_packet_out(args)?;
    c.send(&Message::PacketOut(po))
        .map_err(|e| anyhow!("{e}"))?;
    barrier_collect(c)
}

fn group_mod(
    c: &mut OfClient,
    command: GroupModCommand,
    group: Group,
    opts: &Options,
) -> Result<()> {
    if c.version() == OFP10_VERSION {
        bail!("groups require OpenFlow 1.1 or later (use -O OpenFlow13)");
    }
    let gm = Message::GroupMod(GroupMod { command, group });
    if opts.bundle {
        return send_bundle(c, &[gm]);
    }
    c.send(&gm).map_err(|e| anyhow!("{e}"))?;
    barrier_collect(c)
}

fn dump_groups(c: &mut OfClient) -> Result<()> {
    match c.multipart(MultipartRequestBody::GroupDesc) {
        Ok(MultipartReplyBody::GroupDesc(l)) => {
            println!(
                "{}",
                print::header("OFPST_GROUP_DESC reply", c.version(), c.last_xid())
            );
            for g in &l {
                println!(" {}", print::group(g, c.version()));
            }
            Ok(())
        }
        Ok(_) => bail!("unexpected reply to group desc request"),
        Err(e) => Err(of_err(c, e)),
    }
}

fn meter_mod(c: &mut OfClient, command: MeterModCommand, meter: flows::meter::Meter) -> Result<()> {
    if c.version() == OFP10_VERSION {
        bail!("meters require OpenFlow 1.3 or later (use -O OpenFlow13)");
    }
    c.send(&Message::MeterMod(MeterMod { command, meter }))
        .map_err(|e| anyhow!("{e}"))?;
    barrier_collect(c)
}

fn meter_request(c: &mut OfClient, cmd: &str, meter_id: u32) -> Result<()> {
    if c.version() == OFP10_VERSION {
        bail!("meters require OpenFlow 1.3 or later (use -O OpenFlow13)");
    }
    let body = match cmd {
        "meter-stats" => MultipartRequestBody::Meter { meter_id },
        "meter-features" => MultipartRequestBody::MeterFeatures,
        _ => MultipartRequestBody::MeterConfig { meter_id },
    };
    let text = match c.multipart(body) {
        Ok(MultipartReplyBody::MeterConfig(l)) => {
            meters::config_reply(&l, c.version(), c.last_xid())
        }
        Ok(MultipartReplyBody::Meter(l)) => meters::stats_reply(&l, c.version(), c.last_xid()),
        Ok(MultipartReplyBody::MeterFeatures(f)) => {
            meters::features_reply(&f, c.version(), c.last_xid())
        }
        Ok(_) => bail!("unexpected reply to meter request"),
        Err(e) => return Err(of_err(c, e)),
    };
    println!("{text}");
    Ok(())
}

fn monitor(c: &mut OfClient) -> Result<()> {
    loop {
        let (h, m) = c.recv().map_err(|e| anyhow!("{e}"))?;
        println!("{}", print::async_msg(&m, c.version(), h.xid));
        let _ = std::io::stdout().flush();
    }
}

/// The identity of a flow for replace/diff: table, priority, match.
fn flow_key(table: u8, priority: u32, m: &flows::Match) -> (u8, u32, flows::Match) {
    (table, priority, *m)
}

fn replace_flows(c: &mut OfClient, wanted: Vec<FlowMod>, opts: &Options) -> Result<()> {
    let current = fetch_flows(c, None)?;
    let mut have: HashMap<_, Vec<flows::Action>> = HashMap::new();
    for f in &current {
        have.insert(
            flow_key(f.table_id, u32::from(f.priority), &f.match_),
            f.actions.clone(),
        );
    }
    let mut want_keys = HashMap::new();
    let mut mods = Vec::new();
    for fm in wanted {
        let k = flow_key(fm.table_id, fm.priority, &fm.m);
        if have.get(&k) != Some(&fm.actions) {
            mods.push(fm.clone());
        }
        want_keys.insert(k, ());
    }
    for f in &current {
        let k = flow_key(f.table_id, u32::from(f.priority), &f.match_);
        if !want_keys.contains_key(&k) {
            let mut d = FlowMod::new(FlowModCommand::DeleteStrict);
            d.table_id = f.table_id;
            d.priority = u32::from(f.priority);
            d.m = f.match_;
            mods.push(d);
        }
    }
    send_flow_mods(c, &mods, true, opts)
}

/// Flows of a source for diff-flows: a file if one exists, else a switch.
fn flows_of(source: &str, opts: &Options) -> Result<Vec<(u8, u32, flows::Match, String)>> {
    if std::path::Path::new(source).is_file() {
        Ok(read_flow_file(source)?
            .into_iter()
            .map(|fm| {
                let mut shown = fm.clone();
                shown.command = FlowModCommand::Add;
                (fm.table_id, fm.priority, fm.m, format_flow_mod(&shown))
            })
            .collect())
    } else {
        let mut c = connect(source, opts)?;
        Ok(fetch_flows(&mut c, None)?
            .into_iter()
            .map(|fs| {
                let (rule, _) = flow_stats_to_rule(&fs);
                let mut fm = FlowMod::new(FlowModCommand::Add);
                fm.table_id = fs.table_id;
                fm.priority = rule.priority;
                fm.m = rule.m;
                fm.cookie = rule.cookie;
                fm.idle_timeout = rule.idle_timeout;
                fm.hard_timeout = rule.hard_timeout;
                fm.actions = rule.actions;
                fm.tun_metadata = fs.tun_metadata.clone();
                (fs.table_id, rule.priority, rule.m, format_flow_mod(&fm))
            })
            .collect())
    }
}

fn diff_flows(a: &str, b: &str, opts: &Options) -> Result<()> {
    let fa = flows_of(a, opts)?;
    let fb = flows_of(b, opts)?;
    let index =
        |l: &[(u8, u32, flows::Match, String)]| -> HashMap<(u8, u32, flows::Match), String> {
            l.iter()
                .map(|(t, p, m, s)| ((*t, *p, *m), s.clone()))
                .collect()
        };
    let (ia, ib) = (index(&fa), index(&fb));
    let mut differ = false;
    for (t, p, m, s) in &fa {
        if ib.get(&(*t, *p, *m)) != Some(s) {
            println!("-{s}");
            differ = true;
        }
    }
    for (t, p, m, s) in &fb {
        if ia.get(&(*t, *p, *m)) != Some(s) {
            println!("+{s}");
            differ = true;
        }
    }
    if differ {
        std::process::exit(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_option_builds_the_hello_bitmap() {
        assert_eq!(parse_protocols("OpenFlow13").unwrap(), 0x10);
        assert_eq!(parse_protocols("OpenFlow10,OpenFlow13").unwrap(), 0x12);
        assert_eq!(parse_protocols("OpenFlow14,OpenFlow15").unwrap(), 0x60);
        assert!(parse_protocols("OpenFlow12").is_err());
    }

    #[test]
    fn packet_out_keyword_and_positional_forms_agree() {
        let a = parse_packet_out(&["in_port=1 packet=0102 actions=output:2"]).unwrap();
        let b = parse_packet_out(&["1", "output:2", "0102"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.in_port, 1);
        assert_eq!(a.data, vec![1, 2]);
        assert!(parse_packet_out(&["in_port=1 packet=010"]).is_err());
    }
}
