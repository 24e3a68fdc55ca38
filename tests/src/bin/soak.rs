//! Soak test of vswitchd: port, bridge and flow churn with monitors, slow
//! and hostile clients and `kill -9` restarts, for a bounded time. At the
//! end it checks that the daemon's RSS and file descriptors stayed flat over
//! the last process lifetime, and that the DB, `ofctl show` and
//! `dpctl/show` agree.
//!
//! `soak --soak` runs 10 minutes (not run by CI); `soak --duration SECS`
//! any length (CI runs a short one from tests/tests/soak.rs). Needs root and
//! the debug binaries (`cargo build -p vswitchd -p ofctl`). Run it under the
//! e2e lock: `flock /tmp/ferrovs-e2e.lock target/debug/soak --soak`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrovs_tests::{Switch, is_root, unique_tag, wait_until};
use serde_json::{Value, json};

/// RSS may grow this much between the warm-up sample and the end.
const MAX_RSS_GROWTH_KIB: u64 = 20 * 1024;
/// Open file descriptors may grow this much over the same span.
const MAX_FD_GROWTH: usize = 4;
/// Ports kept on the main bridge once the rotation is full.
const PORTS: usize = 8;
/// Slow clients by default: monitor everything, never read a byte.
const SLOW_CLIENTS: usize = 3;
/// Fast monitors: read and discard every update.
const MONITORS: usize = 2;
/// Size of each of the two big external_ids values rewritten every round,
/// so that every update to a monitor is large (below the 128 KiB limit of
/// one command-line argument).
const BLOB: usize = 100 * 1024;

struct Args {
    duration: Duration,
    slow_clients: usize,
}

fn parse_args() -> Result<Args> {
    let mut duration = Duration::from_secs(60);
    let mut slow_clients = SLOW_CLIENTS;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--soak" => duration = Duration::from_secs(600),
            "--duration" => {
                let v = it.next().context("--duration needs seconds")?;
                duration = Duration::from_secs(v.parse().context("--duration SECS")?);
            }
            "--slow-clients" => {
                let v = it.next().context("--slow-clients needs a count")?;
                slow_clients = v.parse().context("--slow-clients N")?;
            }
            "-h" | "--help" => {
                println!(
                    "usage: soak [--soak | --duration SECS] [--slow-clients N]   (root; --soak is 600 s, {SLOW_CLIENTS} slow clients)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(
        duration >= Duration::from_secs(20),
        "--duration must be at least 20 s"
    );
    Ok(Args {
        duration,
        slow_clients,
    })
}

/// Resident set size (KiB) and open descriptors of a process.
#[derive(Clone, Copy, Debug)]
struct Usage {
    rss_kib: u64,
    fds: usize,
}

fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS in /proc/PID/status")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(Usage { rss_kib, fds })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Counters shared with the client threads.
#[derive(Default)]
struct Counters {
    monitor_updates: AtomicU64,
    monitor_bytes: AtomicU64,
    hostile: AtomicU64,
    big_echoes_answered: AtomicU64,
    big_echoes_refused: AtomicU64,
}

/// A monitor on every table that reads and discards updates (answering
/// echo requests) until the connection closes.
struct Monitor {
    stream: UnixStream,
    thread: JoinHandle<u64>,
}

fn monitor_request(id: &str) -> Vec<u8> {
    let all = json!({});
    let req = json!({
        "method": "monitor",
        "params": ["Open_vSwitch", id, {
            "Open_vSwitch": all, "Bridge": all, "Port": all, "Interface": all
        }],
        "id": id,
    });
    serde_json::to_vec(&req).expect("json")
}

impl Monitor {
    fn start(sock: &Path, n: usize, counters: Arc<Counters>) -> Result<Monitor> {
        let mut stream = UnixStream::connect(sock)?;
        stream.write_all(&monitor_request(&format!("mon{n}")))?;
        let mut writer = stream.try_clone()?;
        let reader = stream.try_clone()?;
        let thread = std::thread::spawn(move || {
            let mut updates = 0u64;
            let values =
                serde_json::Deserializer::from_reader(BufReader::new(reader)).into_iter::<Value>();
            for v in values {
                let Ok(v) = v else { break };
                match v["method"].as_str() {
                    Some("update") => {
                        updates += 1;
                        counters.monitor_updates.fetch_add(1, Ordering::Relaxed);
                        counters
                            .monitor_bytes
                            .fetch_add(v.to_string().len() as u64, Ordering::Relaxed);
                    }
                    Some("echo") => {
                        let r = json!({"result": v["params"], "error": null, "id": v["id"]});
                        if writer.write_all(r.to_string().as_bytes()).is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            updates
        });
        Ok(Monitor { stream, thread })
    }

    /// Closes the connection; returns how many updates it received.
    fn finish(self) -> u64 {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.thread.join().unwrap_or(0)
    }
}

/// The long-lived clients of one daemon lifetime.
struct Clients {
    monitors: Vec<Monitor>,
    /// Slow clients asked for a monitor and never read.
    _slow: Vec<UnixStream>,
    /// A client that connected and never said anything.
    _idle: UnixStream,
}

impl Clients {
    fn start(sock: &Path, slow: usize, counters: &Arc<Counters>) -> Result<Clients> {
        let monitors = (0..MONITORS)
            .map(|n| Monitor::start(sock, n, counters.clone()))
            .collect::<Result<Vec<_>>>()?;
        let slow = (0..slow)
            .map(|n| -> Result<UnixStream> {
                let mut s = UnixStream::connect(sock)?;
                s.write_all(&monitor_request(&format!("slow{n}")))?;
                Ok(s)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Clients {
            monitors,
            _slow: slow,
            _idle: UnixStream::connect(sock)?,
        })
    }

    /// Ends the monitors; fails if one of them never saw an update.
    fn finish(self) -> Result<()> {
        for (i, m) in self.monitors.into_iter().enumerate() {
            let n = m.finish();
            ensure!(n > 0, "monitor {i} received no update in its lifetime");
        }
        Ok(())
    }
}

/// One hostile client visit, chosen by `round`. Each one must leave the
/// daemon answering.
fn hostile(sock: &Path, mgmt: &Path, round: u64, counters: &Counters) -> Result<()> {
    counters.hostile.fetch_add(1, Ordering::Relaxed);
    let timeout = Some(Duration::from_secs(30));
    match round % 6 {
        0 => {
            // Garbage that is not JSON.
            let mut s = UnixStream::connect(sock)?;
            let _ = s.write_all(b"\x00\xff}{][\"\\u12 garbage \x7f\n");
            std::thread::sleep(Duration::from_millis(20));
        }
        1 => {
            // Half a transaction, then gone.
            let mut s = UnixStream::connect(sock)?;
            let _ = s.write_all(
                br#"{"method":"transact","params":["Open_vSwitch",{"op":"insert","table":"Bri"#,
            );
        }
        2 => {
            // A huge (2 MiB) but well-formed echo request: answered in full,
            // or refused by closing if the server's message limit is lower.
            let mut s = UnixStream::connect(sock)?;
            s.set_read_timeout(timeout)?;
            let big = "x".repeat(2 << 20);
            let req = json!({"method": "echo", "params": [big], "id": "big"});
            s.write_all(req.to_string().as_bytes())?;
            let mut reply = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        reply.extend_from_slice(&buf[..n]);
                        if reply.ends_with(b"}") && serde_json::from_slice::<Value>(&reply).is_ok()
                        {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        bail!("no answer to a 2 MiB echo within 30 s")
                    }
                    Err(_) => break,
                }
            }
            match serde_json::from_slice::<Value>(&reply) {
                Ok(v) => {
                    ensure!(
                        v["id"] == "big" && v["result"][0].as_str().map(str::len) == Some(2 << 20),
                        "wrong answer to the 2 MiB echo"
                    );
                    counters.big_echoes_answered.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.big_echoes_refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        3 => {
            // OpenFlow: a header promising more than it sends, then garbage.
            if let Ok(mut s) = UnixStream::connect(mgmt) {
                let _ = s.write_all(&[4, 0, 0xff, 0xff, 0, 0, 0, 1, 1, 2, 3]);
            }
        }
        4 => {
            // OpenFlow garbage: a bad version and length.
            if let Ok(mut s) = UnixStream::connect(mgmt) {
                let _ = s.write_all(&[0x7f, 0x55, 0, 3, 0xde, 0xad, 0xbe, 0xef]);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => {
            // Many requests written at once, replies never read.
            let mut s = UnixStream::connect(sock)?;
            let mut burst = Vec::new();
            for i in 0..200 {
                burst.extend_from_slice(
                    json!({"method": "list_dbs", "params": [], "id": i})
                        .to_string()
                        .as_bytes(),
                );
            }
            let _ = s.write_all(&burst);
        }
    }
    Ok(())
}

/// What the DB has acknowledged, to be found again after a restart.
#[derive(Default)]
struct Expected {
    /// Ports on the main bridge, in the order they were added.
    ports: Vec<String>,
    /// Flows (their tp_dst) added since the daemon last started.
    flows: BTreeSet<u16>,
}

struct Soak {
    tag: String,
    bridge: String,
    counters: Arc<Counters>,
    expected: Expected,
    next_port: u64,
    round: u64,
}

impl Soak {
    fn mgmt(&self, sw: &Switch) -> PathBuf {
        sw.rundir().join(format!("{}.mgmt", self.bridge))
    }

    /// One round of churn and hostility.
    fn round(&mut self, sw: &Switch) -> Result<()> {
        let r = self.round;
        self.round += 1;
        let br = self.bridge.clone();

        // Port churn: add one (dummy or internal), drop the oldest.
        let port = format!("{}p{}", self.tag, self.next_port);
        let kind = if self.next_port.is_multiple_of(2) {
            "dummy"
        } else {
            "internal"
        };
        self.next_port += 1;
        sw.vsctl(&[
            "add-port",
            &br,
            &port,
            "--",
            "set",
            "Interface",
            &port,
            &format!("type={kind}"),
        ])?;
        self.expected.ports.push(port);
        if self.expected.ports.len() > PORTS {
            let old = self.expected.ports.remove(0);
            sw.vsctl(&["del-port", &br, &old])?;
        }

        // Big values rewritten: every monitor gets a large update.
        let fill = char::from(b'a' + (r % 26) as u8);
        let blob: String = std::iter::repeat_n(fill, BLOB).collect();
        sw.vsctl(&[
            "set",
            "Bridge",
            &br,
            &format!("external_ids:blob1={blob}"),
            &format!("external_ids:blob2={blob}"),
        ])?;

        // Flow churn: add three, delete one of the older ones.
        for k in 0..3u16 {
            let dport = ((r * 3) as u16 + k) % 5000 + 1;
            sw.ofctl(&[
                "add-flow",
                &br,
                &format!("priority=100,tcp,tp_dst={dport},actions=drop"),
            ])?;
            self.expected.flows.insert(dport);
        }
        while self.expected.flows.len() > 20 {
            let victim = *self.expected.flows.iter().next().expect("flows");
            sw.ofctl(&["del-flows", &br, &format!("tcp,tp_dst={victim}")])?;
            self.expected.flows.remove(&victim);
        }

        // Bridge churn: a bridge with an internal port, gone within the round.
        if r.is_multiple_of(4) {
            let b2 = format!("{}b{}", self.tag, r % 100);
            sw.vsctl(&["add-br", &b2])?;
            sw.vsctl(&[
                "add-port",
                &b2,
                &format!("{b2}i"),
                "--",
                "set",
                "Interface",
                &format!("{b2}i"),
                "type=internal",
            ])?;
            sw.vsctl(&["del-br", &b2])?;
        }

        hostile(
            &sw.rundir().join("db.sock"),
            &self.mgmt(sw),
            r,
            &self.counters,
        )?;

        // The daemon still answers, and the DB has exactly what was acknowledged.
        let listed: BTreeSet<String> = sw
            .vsctl(&["list-ports", &br])?
            .lines()
            .map(str::to_owned)
            .collect();
        let want: BTreeSet<String> = self.expected.ports.iter().cloned().collect();
        ensure!(
            listed == want,
            "round {r}: DB ports {listed:?}, acknowledged {want:?}"
        );
        Ok(())
    }

    /// The flows vswitchd holds on the main bridge (their tp_dst).
    fn flows(&self, sw: &Switch) -> Result<BTreeSet<u16>> {
        let dump = sw.ofctl(&["dump-flows", &self.bridge])?;
        Ok(dump
            .lines()
            .filter_map(|l| l.split("tp_dst=").nth(1))
            .filter_map(|v| v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect())
    }
}

/// Port name → OpenFlow port number, as `ofctl show` reports them.
fn ofctl_ports(sw: &Switch, br: &str) -> Result<BTreeMap<String, String>> {
    let show = sw.ofctl(&["show", br])?;
    Ok(show
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (num, rest) = l.split_once('(')?;
            if num != "LOCAL" && !num.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (name, _) = rest.split_once("):")?;
            Some((name.to_owned(), num.to_owned()))
        })
        .collect())
}

/// Port name → OpenFlow port number, as the DB has them.
fn db_ports(sw: &Switch, br: &str) -> Result<BTreeMap<String, String>> {
    let mut names: Vec<String> = sw
        .vsctl(&["list-ports", br])?
        .lines()
        .map(str::to_owned)
        .collect();
    names.push(br.to_owned());
    names
        .into_iter()
        .map(|n| {
            let ofport = sw
                .vsctl(&["get", "Interface", &n, "ofport"])?
                .trim()
                .to_owned();
            let ofport = if ofport == "65534" {
                "LOCAL".to_owned()
            } else {
                ofport
            };
            Ok((n, ofport))
        })
        .collect()
}

/// Port name → OpenFlow port number, as `dpctl/show` reports them.
fn dpctl_ports(sw: &Switch, br: &str) -> Result<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(&sw.appctl(&["--format", "json", "dpctl/show"])?)?;
    Ok(v["ports"]
        .as_array()
        .context("dpctl/show ports")?
        .iter()
        .filter(|p| p["bridge"] == br)
        .map(|p| {
            let ofport = match p["ofport"].as_u64() {
                Some(0xffff_fffe) | Some(0xfffe) => "LOCAL".to_owned(),
                Some(n) => n.to_string(),
                None => "?".to_owned(),
            };
            (p["name"].as_str().unwrap_or("?").to_owned(), ofport)
        })
        .collect())
}

/// The DB, `ofctl show` and `dpctl/show` describe the same ports with the
/// same numbers.
fn views_agree(sw: &Switch, br: &str) -> Result<()> {
    let db = db_ports(sw, br)?;
    let of = ofctl_ports(sw, br)?;
    let dp = dpctl_ports(sw, br)?;
    ensure!(
        db == of && of == dp,
        "views disagree on {br}:\n  DB          {db:?}\n  ofctl show  {of:?}\n  dpctl/show  {dp:?}"
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if !is_root() {
        bail!("soak needs root (TAP devices for internal ports)");
    }
    let total = args.duration;
    // Two kill -9 restarts in the first 30 %, then one process lifetime
    // whose RSS and descriptors are compared between 45 % (after warm-up)
    // and the end.
    let kills = [total.mul_f64(0.15), total.mul_f64(0.30)];
    let warm_at = total.mul_f64(0.45);
    let middle_at = total.mul_f64(0.72);

    let tag = unique_tag();
    let bridge = format!("{tag}a");
    let mut sw = Switch::start()?;
    sw.vsctl(&["add-br", &bridge])?;
    let counters = Arc::new(Counters::default());
    let mut soak = Soak {
        tag: tag.clone(),
        bridge: bridge.clone(),
        counters: counters.clone(),
        expected: Expected::default(),
        next_port: 0,
        round: 0,
    };
    let mut clients = Some(Clients::start(
        &sw.rundir().join("db.sock"),
        args.slow_clients,
        &counters,
    )?);

    let t0 = Instant::now();
    let pid0 = sw.proc.child().id();
    let start = usage(pid0)?;
    println!(
        "soak: {} s, {} slow clients, bridge {bridge}, vswitchd pid {pid0}: start rss {} fds {}",
        total.as_secs(),
        args.slow_clients,
        mib(start.rss_kib),
        start.fds
    );
    let mut kills_done = 0;
    let mut restarts = 0;
    let mut warm: Option<Usage> = None;
    let mut middle: Option<Usage> = None;
    let mut last_progress = Instant::now();
    loop {
        let now = t0.elapsed();
        if kills_done < kills.len() && now >= kills[kills_done] {
            kills_done += 1;
            // kill -9 between acknowledged operations; the DB must hold all of them.
            clients.take().map(Clients::finish).transpose()?;
            sw = sw.kill_and_restart()?;
            restarts += 1;
            let listed: BTreeSet<String> = sw
                .vsctl(&["list-ports", &bridge])?
                .lines()
                .map(str::to_owned)
                .collect();
            let want: BTreeSet<String> = soak.expected.ports.iter().cloned().collect();
            ensure!(
                listed == want,
                "after kill -9: DB ports {listed:?}, acknowledged {want:?}"
            );
            // Flow tables are not persistent (as in OVS): start over.
            soak.expected.flows.clear();
            clients = Some(Clients::start(
                &sw.rundir().join("db.sock"),
                args.slow_clients,
                &counters,
            )?);
            println!(
                "soak: t={:>4}s kill -9 and restart #{restarts}: {} acknowledged ports found again, new pid {}",
                now.as_secs(),
                want.len(),
                sw.proc.child().id()
            );
        }

        if let Err(e) = soak.round(&sw) {
            bail!(
                "round {}: {e:#}\nvswitchd log tail:\n{}",
                soak.round,
                tail(&sw.log_text())
            );
        }
        ensure!(
            sw.alive(),
            "vswitchd died; log tail:\n{}",
            tail(&sw.log_text())
        );

        let now = t0.elapsed();
        let pid = sw.proc.child().id();
        if warm.is_none() && now >= warm_at {
            let u = usage(pid)?;
            println!(
                "soak: t={:>4}s warm-up sample: rss {} fds {}",
                now.as_secs(),
                mib(u.rss_kib),
                u.fds
            );
            warm = Some(u);
        }
        if middle.is_none() && now >= middle_at {
            let u = usage(pid)?;
            println!(
                "soak: t={:>4}s middle sample: rss {} fds {}",
                now.as_secs(),
                mib(u.rss_kib),
                u.fds
            );
            middle = Some(u);
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            let u = usage(pid)?;
            println!(
                "soak: t={:>4}s round {} rss {} fds {} ports {} flows {} monitor updates {} ({}) hostile visits {}",
                now.as_secs(),
                soak.round,
                mib(u.rss_kib),
                u.fds,
                soak.expected.ports.len(),
                soak.expected.flows.len(),
                counters.monitor_updates.load(Ordering::Relaxed),
                mib(counters.monitor_bytes.load(Ordering::Relaxed) / 1024),
                counters.hostile.load(Ordering::Relaxed),
            );
        }
        if now >= total {
            break;
        }
    }

    // End sample in the same state as the warm-up one: same long-lived
    // clients connected, no transient bridge.
    let end = usage(sw.proc.child().id())?;
    let warm = warm.context("run too short for a warm-up sample")?;
    let middle = middle.unwrap_or(end);
    let rss_growth = end.rss_kib.saturating_sub(warm.rss_kib);
    let fd_growth = end.fds.saturating_sub(warm.fds);
    println!(
        "soak: summary after {} rounds, {restarts} kill -9 restarts:",
        soak.round
    );
    println!(
        "soak:   rss   start {}  warm {}  middle {}  end {}  (growth {} warm→end, limit {})",
        mib(start.rss_kib),
        mib(warm.rss_kib),
        mib(middle.rss_kib),
        mib(end.rss_kib),
        mib(rss_growth),
        mib(MAX_RSS_GROWTH_KIB)
    );
    println!(
        "soak:   fds   start {}  warm {}  middle {}  end {}  (growth {fd_growth}, limit {MAX_FD_GROWTH})",
        start.fds, warm.fds, middle.fds, end.fds
    );
    println!(
        "soak:   monitor updates {} ({}), hostile visits {}, 2 MiB echoes answered {} refused {}",
        counters.monitor_updates.load(Ordering::Relaxed),
        mib(counters.monitor_bytes.load(Ordering::Relaxed) / 1024),
        counters.hostile.load(Ordering::Relaxed),
        counters.big_echoes_answered.load(Ordering::Relaxed),
        counters.big_echoes_refused.load(Ordering::Relaxed),
    );

    // Final agreement (the daemon applies the DB asynchronously: allow it to settle).
    let mut last = Ok(());
    let agreed = wait_until(Duration::from_secs(20), || {
        last = views_agree(&sw, &bridge);
        last.is_ok()
    });
    if !agreed {
        last?;
    }
    let flows = soak.flows(&sw)?;
    ensure!(
        flows == soak.expected.flows,
        "flow table {flows:?}, expected {:?}",
        soak.expected.flows
    );
    println!(
        "soak:   DB, ofctl show and dpctl/show agree on {} ports; {} flows as expected",
        soak.expected.ports.len() + 1,
        flows.len()
    );
    clients.take().map(Clients::finish).transpose()?;

    ensure!(
        rss_growth <= MAX_RSS_GROWTH_KIB,
        "RSS grew by {} between warm-up and end (limit {})",
        mib(rss_growth),
        mib(MAX_RSS_GROWTH_KIB)
    );
    ensure!(
        fd_growth <= MAX_FD_GROWTH,
        "open descriptors grew from {} to {} between warm-up and end",
        warm.fds,
        end.fds
    );
    println!("soak: PASS");
    Ok(())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
