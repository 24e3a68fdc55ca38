//! The metrics endpoint: the switch's counters in the OpenMetrics text
//! format over HTTP, for Prometheus and anything that reads its format.
//!
//! Off by default; `other_config:metrics-address=IP:PORT` on the
//! `Open_vSwitch` row turns it on (`GET /metrics`), and changing or removing
//! the key moves or stops the listener. Every scrape reads the live counters
//! (the same ones `ofctl dump-ports`, `dpif-netdev/pmd-stats-show`,
//! `dpctl/dump-flows` and `dpctl/ct-get-nconns` show) into a fresh registry, so nothing is kept
//! between scrapes and the fast path does no extra work.
//!
//! The listener goes through [`ovsdb::listener::serve_connections`] like
//! every other socket of the daemon (bounded connections, accept retries),
//! and each request has a size and time limit, so a hostile client can
//! neither stall the endpoint nor grow the daemon's memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{error, info};

use crate::daemon::Ctx;

/// The `other_config` key that enables the endpoint.
pub const ADDRESS_KEY: &str = "metrics-address";

/// Longest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request, and to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more connections are closed at once.
const MAX_CONNECTIONS: usize = 16;

/// The OpenMetrics media type, for clients that ask for it (Prometheus does).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for every other client
/// (`promtool check metrics`, curl).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// A counter family: name, help, and how to read it from a snapshot.
type CounterOf<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Parses the value of `other_config:metrics-address`.
pub fn parse_address(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("other_config:{ADDRESS_KEY}={s:?}: expected IP:PORT (for example 127.0.0.1:9475)")
    })
}

/// Owns the listener and follows `other_config:metrics-address`.
pub struct Exporter {
    rt: tokio::runtime::Handle,
    /// The address configured last (valid or not), so that a bad value is
    /// reported once.
    configured: Option<String>,
    running: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl Exporter {
    pub fn new(rt: tokio::runtime::Handle) -> Exporter {
        Exporter {
            rt,
            configured: None,
            running: None,
        }
    }

    /// Starts, moves or stops the listener to match `address` (the value
    /// of the key, or `None` when it is absent). Errors are logged; the
    /// rest of the switch is not affected.
    pub fn configure(&mut self, address: Option<&str>, ctx: &Arc<Ctx>) {
        if self.configured.as_deref() == address {
            return;
        }
        self.configured = address.map(str::to_owned);
        if let Some((addr, task)) = self.running.take() {
            task.abort();
            info!("metrics endpoint on {addr} stopped");
        }
        let Some(address) = address else {
            return;
        };
        let addr = match parse_address(address) {
            Ok(a) => a,
            Err(e) => {
                error!("{e}; the metrics endpoint stays off");
                return;
            }
        };
        let listener = match std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
        {
            Ok(l) => l,
            Err(e) => {
                error!("metrics endpoint: cannot listen on {addr}: {e}");
                return;
            }
        };
        let _guard = self.rt.enter();
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                error!("metrics endpoint: {addr}: {e}");
                return;
            }
        };
        let ctx = ctx.clone();
        let name = format!("metrics {addr}");
        let task = self.rt.spawn(async move {
            ovsdb::listener::serve_connections(listener, &name, MAX_CONNECTIONS, move |s| {
                handle(ctx.clone(), s)
            })
            .await;
        });
        info!("metrics endpoint listening on http://{addr}/metrics");
        self.running = Some((addr, task));
    }
}

/// Serves one request on `stream`.
async fn handle(ctx: Arc<Ctx>, mut stream: tokio::net::TcpStream) {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(h)) => h,
        // Timed out, too long, or closed early: nothing worth answering.
        Ok(None) | Err(_) => {
            let _ = stream
                .write_all(&response(400, "text/plain", b"bad request\n"))
                .await;
            return;
        }
    };
    let reply = match route(&head) {
        Route::Metrics => {
            let text = tokio::task::spawn_blocking(move || scrape(&ctx)).await;
            match text {
                Ok(t) if wants_openmetrics(&head) => response(200, OPENMETRICS, t.as_bytes()),
                Ok(t) => response(200, TEXT_FORMAT, text_format(&t).as_bytes()),
                Err(_) => response(500, "text/plain", b"scrape failed\n"),
            }
        }
        Route::NotFound => response(404, "text/plain", b"not found: try /metrics\n"),
        Route::BadMethod => response(405, "text/plain", b"only GET\n"),
    };
    let _ = tokio::time::timeout(IO_TIMEOUT, stream.write_all(&reply)).await;
    let _ = stream.shutdown().await;
}

/// Reads up to the blank line that ends an HTTP request head. `None` when
/// the peer closes first or the head is longer than [`MAX_REQUEST`].
async fn read_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf) {
            buf.truncate(end);
            return String::from_utf8(buf).ok();
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadMethod,
}

/// What a request head asks for.
fn route(head: &str) -> Route {
    let mut words = head.lines().next().unwrap_or("").split_ascii_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return Route::BadMethod;
    }
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// True when the request's `Accept` header names OpenMetrics.
fn wants_openmetrics(head: &str) -> bool {
    head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    })
}

/// The same exposition in the classic text format (0.0.4): a counter's
/// family takes the `_total` name of its samples, and OpenMetrics-only
/// lines (`# UNIT`, `# EOF`) go.
fn text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (family, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_owned(), "untyped"),
                k => (name.to_owned(), k),
            };
            if let Some((_, text)) = help.take().filter(|(h, _)| *h == name) {
                out.push_str(&format!("# HELP {family} {text}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn response(code: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A counter family registered under `name`.
fn counters(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    reg.register(name, help, f.clone());
    f
}

/// A gauge family registered under `name`.
fn gauges(reg: &mut Registry, name: &str, help: &str) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    reg.register(name, help, f.clone());
    f
}

/// The exposition of everything the switch counts, now.
pub fn scrape(ctx: &Ctx) -> String {
    let mut reg = Registry::with_prefix("ferrovs");

    // Per interface, the counters `ofctl dump-ports` shows.
    let ports = ctx.switch.port_counters();
    let port_families: [CounterOf<datapath::PortStatsSnapshot>; 8] = [
        (
            "interface_rx_packets",
            "Packets received on the interface",
            |s| s.rx_packets,
        ),
        (
            "interface_rx_bytes",
            "Bytes received on the interface",
            |s| s.rx_bytes,
        ),
        ("interface_rx_dropped", "Received packets dropped", |s| {
            s.rx_dropped
        }),
        ("interface_rx_errors", "Receive errors", |s| s.rx_errors),
        (
            "interface_tx_packets",
            "Packets sent on the interface",
            |s| s.tx_packets,
        ),
        ("interface_tx_bytes", "Bytes sent on the interface", |s| {
            s.tx_bytes
        }),
        (
            "interface_tx_dropped",
            "Packets dropped on the way out",
            |s| s.tx_dropped,
        ),
        ("interface_tx_errors", "Transmit errors", |s| s.tx_errors),
    ];
    for (name, help, get) in port_families {
        let fam = counters(&mut reg, name, help);
        for p in &ports {
            let labels = vec![
                ("bridge", p.bridge.clone()),
                ("interface", p.iface.clone()),
                ("ofport", ofport_label(p.ofport)),
            ];
            fam.get_or_create(&labels).inc_by(get(&p.stats));
        }
    }

    // Per PMD thread.
    let pmds = ctx.switch.dp.pmd_stats();
    let pmd_families: [CounterOf<datapath::dpif::PmdStats>; 5] = [
        ("pmd_rx_packets", "Packets the PMD thread received", |s| {
            s.rx_packets
        }),
        ("pmd_emc_hits", "Exact-match cache hits", |s| s.emc_hits),
        ("pmd_megaflow_hits", "Megaflow classifier hits", |s| {
            s.megaflow_hits
        }),
        ("pmd_upcalls", "Misses handed to the slow path", |s| {
            s.upcalls
        }),
        (
            "pmd_lost_upcalls",
            "Misses dropped because the upcall queue was full",
            |s| s.lost_upcalls,
        ),
    ];
    let pmd_label = |s: &datapath::dpif::PmdStats| {
        vec![
            ("pmd", s.pmd.to_string()),
            (
                "cpu",
                s.cpu
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "unpinned".into()),
            ),
        ]
    };
    for (name, help, get) in pmd_families {
        let fam = counters(&mut reg, name, help);
        for s in &pmds {
            fam.get_or_create(&pmd_label(s)).inc_by(get(s));
        }
    }
    let cycles = counters(
        &mut reg,
        "pmd_cycles",
        "PMD thread CPU cycles, by state (busy, idle polling, sleeping)",
    );
    let stage_cycles = counters(
        &mut reg,
        "pmd_stage_cycles",
        "Cycles of busy iterations, by stage of the packet path",
    );
    for s in &pmds {
        for (state, v) in [
            ("busy", s.busy_cycles),
            ("idle", s.idle_cycles),
            ("sleep", s.sleep_cycles),
        ] {
            let mut l = pmd_label(s);
            l.push(("state", state.into()));
            cycles.get_or_create(&l).inc_by(v);
        }
        for stage in datapath::dpif::Stage::ALL {
            let mut l = pmd_label(s);
            l.push(("stage", stage.name().into()));
            stage_cycles
                .get_or_create(&l)
                .inc_by(s.stage_cycles[stage as usize]);
        }
    }

    // Flows: OpenFlow rules per bridge, datapath megaflows.
    let rules = gauges(
        &mut reg,
        "openflow_rules",
        "OpenFlow rules installed, per bridge",
    );
    let controllers = gauges(
        &mut reg,
        "openflow_controllers_connected",
        "Remote OpenFlow controllers connected, per bridge",
    );
    for b in ctx.switch.slow.all_bridges() {
        let n = b.lock().pipeline.n_rules();
        let labels = vec![("bridge", b.name.clone())];
        rules.get_or_create(&labels).set(n as i64);
        controllers
            .get_or_create(&labels)
            .set(b.controllers_connected.load(Ordering::Relaxed) as i64);
    }
    let megaflows = gauges(
        &mut reg,
        "datapath_megaflows",
        "Megaflows cached in the datapath",
    );
    megaflows
        .get_or_create(&Vec::new())
        .set(ctx.switch.dp.dump_flows().len() as i64);

    // Connection tracking.
    let conns = gauges(
        &mut reg,
        "conntrack_connections",
        "Connections in the connection tracker",
    );
    conns
        .get_or_create(&Vec::new())
        .set(i64::from(ctx.switch.slow.ct.tracker().nconns()));

    // Controller connections as the DB shows them (Controller.is_connected).
    let controller_up = gauges(
        &mut reg,
        "openflow_controller_up",
        "1 when the controller (by its Controller row) is connected, else 0",
    );
    for c in ctx.of.controller_status() {
        controller_up
            .get_or_create(&vec![("controller", c.uuid.to_string())])
            .set(i64::from(c.connected));
    }

    // The config DB server.
    let db_clients = gauges(
        &mut reg,
        "ovsdb_clients",
        "Clients connected to the config DB",
    );
    db_clients
        .get_or_create(&Vec::new())
        .set(ctx.db_stats.clients.load(Ordering::Relaxed) as i64);
    let uptime = gauges(&mut reg, "uptime_seconds", "Seconds since vswitchd started");
    uptime
        .get_or_create(&Vec::new())
        .set(ctx.started.elapsed().as_secs() as i64);

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

fn ofport_label(p: flows::action::PortNo) -> String {
    if p == flows::action::port::LOCAL {
        "LOCAL".into()
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_of_the_metrics_path_is_served() {
        assert_eq!(route("GET /metrics HTTP/1.1\r\nHost: x"), Route::Metrics);
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0"), Route::Metrics);
        assert_eq!(route("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route("GET /metrics/../etc HTTP/1.1"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::BadMethod);
        assert_eq!(route(""), Route::BadMethod);
    }

    #[test]
    fn a_request_head_ends_at_the_first_blank_line() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(20));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn addresses_need_ip_and_port() {
        assert_eq!(
            parse_address("127.0.0.1:9475").unwrap(),
            "127.0.0.1:9475".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_address("[::1]:80").is_ok());
        let e = parse_address("localhost").unwrap_err();
        assert!(e.contains("expected IP:PORT"), "{e}");
        assert!(parse_address("127.0.0.1").is_err());
    }

    #[test]
    fn the_text_format_names_counter_families_by_their_total_samples() {
        let om = "# HELP x_packets Packets.\n# TYPE x_packets counter\nx_packets_total{a=\"1\"} 5\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n# EOF\n";
        assert_eq!(
            text_format(om),
            "# HELP x_packets_total Packets.\n# TYPE x_packets_total counter\nx_packets_total{a=\"1\"} 5\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    #[test]
    fn openmetrics_only_for_clients_that_accept_it() {
        assert!(wants_openmetrics(
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.4"
        ));
        assert!(!wants_openmetrics("GET /metrics HTTP/1.1\r\nAccept: */*"));
        assert!(!wants_openmetrics("GET /metrics HTTP/1.1"));
    }

    #[test]
    fn responses_carry_length_and_close() {
        let r = String::from_utf8(response(404, "text/plain", b"abc")).unwrap();
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(r.contains("Content-Length: 3\r\n"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nabc"));
    }
}
