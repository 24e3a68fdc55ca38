//! Issue 11: the soak test, short version (75 s). The 10-minute run is
//! `target/debug/soak --soak` (not run by CI; figures in the README
//! test section). Port, bridge and flow churn, monitors, slow
//! and hostile clients and two `kill -9` restarts; RSS and descriptors must
//! stay flat and the DB, `ofctl show` and `dpctl/show` must agree.

use std::process::Command;

use anyhow::Result;
use ferrovs_tests::*;

#[test]
fn short_soak_keeps_rss_and_fds_flat_and_the_views_in_agreement() -> Result<()> {
    require!();
    let out = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--duration", "75"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "soak failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("soak: PASS"), "{stdout}");
    Ok(())
}
