//! Issue 16: "the BFD columns are out of scope until gateway HA is asked
//! for: report BFD as unsupported, not as silently working". What an
//! operator sees when a tunnel Interface asks for BFD, as ovn-controller
//! does for gateway chassis (`bfd:enable=true`): `status:bfd=unsupported`,
//! an empty `bfd_status` (no session state, in particular no
//! `forwarding=true` for OVN to trust), and a warning in the log. Turning
//! BFD off removes the report; the tunnel's own status stays.
//!
//! Run under the e2e lock: `flock /tmp/ferrovs-e2e.lock cargo test -p
//! ferrovs-tests --test bfd_unsupported`.

use std::time::Duration;

use anyhow::{Result, bail};
use ferrovs_tests::*;

#[test]
fn a_tunnel_asking_for_bfd_shows_bfd_unsupported_in_status_and_an_empty_bfd_status() -> Result<()> {
    require!();
    let sw = Switch::start()?;
    let (br, port) = ("ofinbfd0", "ofinbfdt");
    sw.vsctl(&[
        "add-br",
        br,
        "--",
        "set",
        "Bridge",
        br,
        "datapath_type=netdev",
    ])?;
    sw.vsctl(&[
        "add-port",
        br,
        port,
        "--",
        "set",
        "Interface",
        port,
        "type=geneve",
        "options:remote_ip=10.254.77.2",
        "options:key=flow",
        "bfd:enable=true",
    ])?;
    let status = || {
        sw.vsctl(&["get", "Interface", port, "status"])
            .unwrap_or_default()
    };
    if !wait_until(Duration::from_secs(10), || {
        status().contains("bfd=unsupported")
    }) {
        bail!(
            "no bfd=unsupported in status {:?}\n{}",
            status(),
            sw.log_text()
        );
    }
    assert_eq!(
        sw.vsctl(&["get", "Interface", port, "bfd_status"])?.trim(),
        "{}"
    );
    let log = sw.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(port) && l.contains("BFD")),
        "{log}"
    );
    // The port itself is up and carries no error: BFD is what is missing.
    assert_eq!(sw.vsctl(&["get", "Interface", port, "error"])?.trim(), "[]");
    sw.vsctl(&["set", "Interface", port, "bfd:enable=false"])?;
    if !wait_until(Duration::from_secs(10), || !status().contains("bfd=")) {
        bail!("bfd key still in status {:?}", status());
    }
    Ok(())
}
