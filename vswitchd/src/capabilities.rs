//! What this switch really has, as the DB reports it to controllers (OVN reads
//! these): `Open_vSwitch.iface_types`, `datapath_types`, and the
//! `Datapath.capabilities` map. One place, so a feature that lands (a tunnel
//! type, conntrack) changes its answer here.

/// Interface types `Switch::open_iface` opens (OVS's names; `""` is `system`).
pub const IFACE_TYPES: &[&str] = &[
    "afxdp",
    "dpdkvhostuser",
    "dpdkvhostuserclient",
    "dummy",
    "geneve",
    "gre",
    "internal",
    "patch",
    "system",
    "tap",
    "vhostuser",
    "vhostuserclient",
    "vxlan",
];

/// Datapath types: ferrovs has one datapath, the userspace one OVS calls `netdev`.
pub const DATAPATH_TYPES: &[&str] = &["netdev"];

/// Whether a bridge's `datapath_type` is one this switch runs (`""` is the default).
pub fn is_our_datapath_type(t: &str) -> bool {
    t.is_empty() || DATAPATH_TYPES.contains(&t)
}

/// The `capabilities` of the `Datapath` row of type `netdev`, with the keys
/// stock OVS writes there, each with what ferrovs's datapath does today:
/// its actions are output, userspace, VLAN push/pop, whole-field sets,
/// recirculation, and connection tracking (`ct` with zones, mark, label,
/// NAT, the original-tuple fields and timeout policies; `ct_clear`; flush by
/// tuple through `dpctl/flush-conntrack` and NXT_CT_FLUSH); there is no
/// clone, truncation, MPLS, packet-length check action, masked set or
/// conntrack event mask yet.
pub fn datapath_capabilities() -> Vec<(&'static str, String)> {
    let no = |k: &'static str| (k, "false".to_owned());
    let yes = |k: &'static str| (k, "true".to_owned());
    vec![
        no("add_mpls"),
        no("check_pkt_len"),
        no("clone"),
        yes("ct_clear"),
        no("ct_eventmask"),
        // dpctl/flush-conntrack and NXT_CT_FLUSH by (partial) tuple.
        yes("ct_flush"),
        yes("ct_label"),
        yes("ct_mark"),
        yes("ct_orig_tuple"),
        yes("ct_orig_tuple6"),
        yes("ct_state"),
        yes("ct_state_nat"),
        // Timeout policies from CT_Zone/CT_Timeout_Policy (`ct_policy`).
        yes("ct_timeout"),
        no("ct_zero_snat"),
        yes("ct_zone"),
        no("explicit_drop_action"),
        no("lb_output_action"),
        no("masked_set_action"),
        // Select groups hash the L4 5-tuple during translation (OVS_HASH_ALG_L4);
        // the datapath itself has no dp_hash action.
        ("max_hash_alg", "0".to_owned()),
        ("max_mpls_depth", "0".to_owned()),
        (
            "max_vlan_headers",
            flows::parse::MAX_VLAN_HEADERS.to_string(),
        ),
        no("nd_ext"),
        yes("recirc"),
        no("sample_nesting"),
        // Native tunnelling (`DpAction::TnlPush`/`TnlPop`).
        ("tnl_push_pop", "true".to_owned()),
        no("trunc"),
        no("ufid"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys stock OVS 3.1 writes for a `netdev` datapath on this machine.
    const OVS_KEYS: &[&str] = &[
        "add_mpls",
        "check_pkt_len",
        "clone",
        "ct_clear",
        "ct_eventmask",
        "ct_flush",
        "ct_label",
        "ct_mark",
        "ct_orig_tuple",
        "ct_orig_tuple6",
        "ct_state",
        "ct_state_nat",
        "ct_timeout",
        "ct_zero_snat",
        "ct_zone",
        "explicit_drop_action",
        "lb_output_action",
        "masked_set_action",
        "max_hash_alg",
        "max_mpls_depth",
        "max_vlan_headers",
        "nd_ext",
        "recirc",
        "sample_nesting",
        "tnl_push_pop",
        "trunc",
        "ufid",
    ];

    #[test]
    fn capabilities_have_the_keys_ovs_writes_and_claim_exactly_the_conntrack_that_runs() {
        let caps = datapath_capabilities();
        let keys: Vec<&str> = caps.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, OVS_KEYS);
        let claimed: Vec<&str> = caps
            .iter()
            .filter(|(_, v)| v == "true")
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            claimed,
            [
                "ct_clear",
                "ct_flush",
                "ct_label",
                "ct_mark",
                "ct_orig_tuple",
                "ct_orig_tuple6",
                "ct_state",
                "ct_state_nat",
                "ct_timeout",
                "ct_zone",
                "recirc",
                "tnl_push_pop"
            ]
        );
    }

    #[test]
    fn tunnels_and_patch_ports_are_claimed_now_that_they_forward() {
        for t in ["vxlan", "geneve", "gre"] {
            assert!(IFACE_TYPES.contains(&t), "{t}");
        }
        assert!(IFACE_TYPES.contains(&"patch"));
        assert!(
            datapath_capabilities()
                .iter()
                .any(|(k, v)| *k == "tnl_push_pop" && v == "true")
        );
        assert!(IFACE_TYPES.contains(&"dpdkvhostuser"));
        assert!(IFACE_TYPES.contains(&"afxdp"));
        assert!(is_our_datapath_type(""));
        assert!(is_our_datapath_type("netdev"));
        assert!(!is_our_datapath_type("system"));
    }
}
