//! `bond/show [PORT]`, `bond/list`, `bond/hash MAC [VLAN]` and
//! `lacp/show [PORT]`, in Open vSwitch's layout.

use std::sync::Arc;

use crate::daemon::Ctx;
use crate::unixctl::{Registry, Reply};

pub fn register(r: &Registry, ctx: Arc<Ctx>) {
    let c = ctx.clone();
    r.register(
        "bond/show",
        "[port]",
        0,
        1,
        Arc::new(move |args, _fmt| {
            let sp = &c.switch.slow;
            sp.bonds
                .show_bonds(args.first().map(String::as_str), sp.now_ms())
                .map(Reply::Text)
        }),
    );
    let c = ctx.clone();
    r.register(
        "bond/list",
        "",
        0,
        0,
        Arc::new(move |_args, _fmt| Ok(Reply::Text(c.switch.slow.bonds.list()))),
    );
    r.register(
        "bond/hash",
        "mac [vlan] [basis]",
        1,
        3,
        Arc::new(|args, _fmt| super::Bonds::hash(args).map(Reply::Text)),
    );
    let c = ctx;
    r.register(
        "lacp/show",
        "[port]",
        0,
        1,
        Arc::new(move |args, _fmt| {
            c.switch
                .slow
                .bonds
                .show_lacp(args.first().map(String::as_str))
                .map(Reply::Text)
        }),
    );
}
