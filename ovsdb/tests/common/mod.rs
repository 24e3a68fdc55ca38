//! Test harness: a `ferrovs-ovsdb` process on a private socket, and a stand-in for vswitchd
//! that copies `next_cfg` to `cur_cfg`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ovsdb::client::Client;
use serde_json::{Value, json};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
}

impl Server {
    pub fn start() -> Server {
        let dir = tempfile::Builder::new()
            .prefix("db-test-")
            .tempdir()
            .unwrap();
        let mut s = Server { dir, child: None };
        s.spawn();
        s
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("db.sock")
    }

    pub fn target(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    pub fn db_file(&self) -> PathBuf {
        self.dir.path().join("conf.db")
    }

    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.sock());
        let child = Command::new(env!("CARGO_BIN_EXE_ferrovs-ovsdb"))
            .arg("--db")
            .arg(self.db_file())
            .arg("--remote")
            .arg(format!("punix:{}", self.sock().display()))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferrovs-ovsdb");
        self.child = Some(child);
        wait_for_socket(&self.sock());
    }

    /// SIGKILL the server, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGKILL);
            }
            let _ = c.wait();
        }
    }

    pub fn client(&self) -> Client {
        let mut c = Client::connect(&self.target()).unwrap();
        c.set_timeout(Some(Duration::from_secs(30))).unwrap();
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn wait_for_socket(p: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::os::unix::net::UnixStream::connect(p).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server socket {} did not appear", p.display());
}

/// Waits until something accepts TCP connections on `addr`: a server
/// binds its remotes one after another, so one remote answering says
/// nothing about the next.
pub fn wait_for_tcp(addr: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr}");
}

/// Whether a peer program is installed; prints why a test is skipped when it is not.
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("SKIPPED: {program} is not installed");
    }
    found
}

/// Plays vswitchd's part for `ovs-vsctl` without `--no-wait`: copies next_cfg to cur_cfg.
pub struct CfgCopier {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl CfgCopier {
    pub fn start(target: String) -> CfgCopier {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut c = Client::connect(&target).unwrap();
            while !s2.load(Ordering::Relaxed) {
                let r = c
                    .transact(vec![json!({"op": "select", "table": "Open_vSwitch", "where": [], "columns": ["next_cfg", "cur_cfg"]})])
                    .unwrap();
                let row = &r[0]["rows"][0];
                if row["next_cfg"] != row["cur_cfg"] {
                    c.transact(vec![
                        json!({"op": "update", "table": "Open_vSwitch", "where": [],
                        "row": {"cur_cfg": row["next_cfg"].clone()}}),
                    ])
                    .unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        CfgCopier {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for CfgCopier {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Run a command, returning (status, stdout, stderr).
pub fn run(cmd: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(cmd).args(args).output().expect("run command");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn select(c: &mut Client, table: &str, columns: &[&str]) -> Vec<Value> {
    let r = c
        .transact(vec![
            json!({"op": "select", "table": table, "where": [], "columns": columns}),
        ])
        .unwrap();
    r[0]["rows"].as_array().cloned().unwrap_or_default()
}
