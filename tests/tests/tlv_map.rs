//! The Geneve TLV map (issue 13 part 3, issue 14 part 2): stock
//! `ovs-ofctl add-tlv-map / del-tlv-map / dump-tlv-map` against ferrovs
//! print exactly what they print against stock ovs-vswitchd, errors
//! included, and ferrovs's own `ofctl` prints the same.
//!
//! Bridges are named `tlvN`. Run with the machine-wide lock: `flock
//! /tmp/ferrovs-e2e.lock cargo test -p tests --test tlv_map`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use ferrovs_tests::*;

fn mgmt(dir: &Path, br: &str) -> String {
    format!("unix:{}", dir.join(format!("{br}.mgmt")).display())
}

/// Exit status, stdout and stderr of stock `ovs-ofctl ARGS SWITCH [MAP]`,
/// with ovs-ofctl's own timestamped log lines reduced to their message.
fn ovs_ofctl(args: &[&str]) -> Result<(bool, String, String)> {
    let out = run_output(Command::new("ovs-ofctl").args(args))?;
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| match l.split_once("|WARN|") {
            Some((_, msg)) => msg,
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    ))
}

/// `s` without its `(xid=0x…)` (clients number requests differently).
fn no_xid(s: &str) -> String {
    match (s.find("(xid="), s.find("):")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &s[..a], &s[b + 1..]),
        _ => s.to_string(),
    }
}

const GENEVE_OVN: &str = "{class=0x0102,type=0x80,len=4}->tun_metadata0";

/// (command, bridge, map) sequences run through stock `ovs-ofctl` against
/// both switches.
const SCRIPT: &[(&str, &str, &str, Option<&str>)] = &[
    ("OpenFlow15", "dump-tlv-map", "tlv1", None),
    ("OpenFlow15", "add-tlv-map", "tlv1", Some(GENEVE_OVN)),
    ("OpenFlow15", "dump-tlv-map", "tlv1", None),
    // The same index again, and the same option on another index.
    ("OpenFlow15", "add-tlv-map", "tlv1", Some(GENEVE_OVN)),
    (
        "OpenFlow15",
        "add-tlv-map",
        "tlv1",
        Some("{class=0x0102,type=0x80,len=4}->tun_metadata1"),
    ),
    // Not a multiple of 4; index out of range.
    (
        "OpenFlow15",
        "add-tlv-map",
        "tlv1",
        Some("{class=0x0102,type=0x81,len=5}->tun_metadata1"),
    ),
    (
        "OpenFlow15",
        "add-tlv-map",
        "tlv1",
        Some("{class=0x5,type=0x1,len=4}->tun_metadata64"),
    ),
    // 4 + 124 + 124 + 8 bytes: over the 256 of option space, and none
    // of the three is kept.
    (
        "OpenFlow15",
        "add-tlv-map",
        "tlv1",
        Some(
            "{class=0xffff,type=0x81,len=124}->tun_metadata1,\
             {class=0xffff,type=0x82,len=124}->tun_metadata2,\
             {class=0xffff,type=0x83,len=8}->tun_metadata3",
        ),
    ),
    // Deleting an index that is not mapped is fine.
    (
        "OpenFlow15",
        "del-tlv-map",
        "tlv1",
        Some("{class=0x0102,type=0x80,len=4}->tun_metadata5"),
    ),
    (
        "OpenFlow15",
        "add-tlv-map",
        "tlv1",
        Some(
            "{class=0x1,type=0x1,len=8}->tun_metadata63,{class=0x2,type=0x2,len=4}->tun_metadata7",
        ),
    ),
    ("OpenFlow13", "dump-tlv-map", "tlv1", None),
    // The map is per bridge.
    ("OpenFlow15", "dump-tlv-map", "tlv2", None),
    ("OpenFlow14", "add-tlv-map", "tlv1", Some(GENEVE_OVN)),
    (
        "OpenFlow15",
        "del-tlv-map",
        "tlv1",
        Some("{class=0x1,type=0x1,len=8}->tun_metadata63"),
    ),
    ("OpenFlow15", "dump-tlv-map", "tlv1", None),
    ("OpenFlow14", "del-tlv-map", "tlv1", None),
    ("OpenFlow15", "dump-tlv-map", "tlv1", None),
    // A zero-length option is allowed.
    (
        "OpenFlow15",
        "add-tlv-map",
        "tlv1",
        Some("{class=0x5,type=0x1,len=0}->tun_metadata10"),
    ),
    ("OpenFlow15", "dump-tlv-map", "tlv1", None),
];

#[test]
fn stock_ovs_ofctl_tlv_map_commands_print_the_same_on_ferrovs_as_on_ovs() -> Result<()> {
    require!("ovs-ofctl");
    require!("ovs-vswitchd");
    let ovs = StockOvs::start("tlv-ovs-")?;
    let sw = Switch::start()?;
    for br in ["tlv1", "tlv2"] {
        ovs.vsctl(&[
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            "datapath_type=dummy",
        ])?;
        sw.vsctl(&["add-br", br])?;
    }
    for br in ["tlv1", "tlv2"] {
        for dir in [ovs.dir(), sw.rundir()] {
            let p = dir.join(format!("{br}.mgmt"));
            assert!(
                wait_until(Duration::from_secs(20), || p.exists()),
                "{} never appeared",
                p.display()
            );
        }
    }
    let mut errors = 0;
    for (version, cmd, br, map) in SCRIPT {
        let mut results = Vec::new();
        for dir in [ovs.dir(), sw.rundir()] {
            let target = mgmt(dir, br);
            let mut args = vec!["-O", version, cmd, target.as_str()];
            args.extend(map.iter());
            results.push(ovs_ofctl(&args)?);
        }
        let (stock, ours) = (&results[0], &results[1]);
        assert_eq!(ours, stock, "{version} {cmd} {br} {map:?}");
        if !stock.0 {
            errors += 1;
        }
    }
    // The script did exercise refusals (ALREADY_MAPPED, DUP_ENTRY,
    // BAD_OPT_LEN, BAD_FIELD_IDX, TABLE_FULL, ALREADY_MAPPED in 1.4).
    assert_eq!(errors, 6);

    // What OVN's option looks like in a dump, from ofctl too.
    let t = mgmt(sw.rundir(), "tlv2");
    let (ok, _, _) = ovs_ofctl(&["-O", "OpenFlow15", "add-tlv-map", &t, GENEVE_OVN])?;
    assert!(ok);
    let (_, stock_dump, _) = ovs_ofctl(&["-O", "OpenFlow15", "dump-tlv-map", &t])?;
    assert_eq!(
        stock_dump,
        "NXT_TLV_TABLE_REPLY (OF1.5) (xid=0x2):\n max option space=256 max fields=64\n \
         allocated option space=4\n\n mapping table:\n  class  type  length  match field\n \
         ------  ----  ------  --------------\n  0x102  0x80       4  tun_metadata0\n"
    );
    let ours = sw.ofctl(&["-O", "OpenFlow15", "dump-tlv-map", "tlv2"])?;
    assert_eq!(no_xid(&ours), no_xid(&stock_dump));
    let out = sw.tool_output(
        "ofctl",
        &["-O", "OpenFlow15", "add-tlv-map", "tlv2", GENEVE_OVN],
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NXTTMFC_ALREADY_MAPPED\nNXT_TLV_TABLE_MOD (OF1.5)"),
        "{err}"
    );
    sw.ofctl(&["-O", "OpenFlow15", "del-tlv-map", "tlv2"])?;
    let ours = sw.ofctl(&["-O", "OpenFlow15", "dump-tlv-map", "tlv2"])?;
    assert!(ours.contains("allocated option space=0\n"), "{ours}");
    Ok(())
}
