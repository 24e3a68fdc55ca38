//! ovs-ofctl's group syntax: `group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=output:2`.
//! Bucket actions are parsed by `flows::text`.

use flows::action::port;
use flows::text::{format_actions, format_port, parse_actions, parse_port};
use openflow::consts::OFPG_ANY;
use openflow::{Bucket, GroupDesc, GroupType};

/// A parsed group (for add-group / mod-group / del-groups).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupSpec {
    pub group_id: u32,
    pub group_type: GroupType,
    pub buckets: Vec<Bucket>,
}

fn type_from_name(s: &str) -> Option<GroupType> {
    Some(match s {
        "all" => GroupType::All,
        "select" => GroupType::Select,
        "indirect" => GroupType::Indirect,
        "ff" | "fast_failover" => GroupType::FastFailover,
        _ => return None,
    })
}

fn type_name(t: GroupType) -> &'static str {
    match t {
        GroupType::All => "all",
        GroupType::Select => "select",
        GroupType::Indirect => "indirect",
        GroupType::FastFailover => "ff",
    }
}

fn num(s: &str, what: &str) -> Result<u32, String> {
    flows::text::parse_uint(s)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("{s}: invalid {what}"))
}

fn parse_bucket(s: &str) -> Result<Bucket, String> {
    let mut b = Bucket {
        weight: 1,
        watch_port: port::ANY,
        watch_group: OFPG_ANY,
        actions: Vec::new(),
    };
    let mut rest = s;
    loop {
        let (tok, tail) = match rest.split_once(',') {
            Some((t, r)) => (t, r),
            None => (rest, ""),
        };
        let (k, v) = match tok.split_once([':', '=']) {
            Some(kv) => kv,
            None => break,
        };
        match k {
            "weight" => {
                b.weight =
                    u16::try_from(num(v, "weight")?).map_err(|_| format!("{v}: invalid weight"))?
            }
            "watch_port" => {
                b.watch_port = parse_port(v).ok_or_else(|| format!("{v}: invalid watch_port"))?
            }
            "watch_group" => b.watch_group = num(v, "watch_group")?,
            "bucket_id" => {}
            "actions" => {
                rest = if tail.is_empty() {
                    v
                } else {
                    &rest["actions=".len()..]
                };
                break;
            }
            _ => break,
        }
        rest = tail;
        if rest.is_empty() {
            break;
        }
    }
    b.actions = parse_actions(rest).map_err(|e| e.to_string())?;
    Ok(b)
}

/// Parses a group as ovs-ofctl's add-group/mod-group do. With
/// `need_type == false` (del-groups) only `group_id` is required.
pub fn parse_group(s: &str, need_type: bool) -> Result<GroupSpec, String> {
    let mut parts = s.split("bucket=");
    let head = parts.next().unwrap_or("");
    let mut group_id = None;
    let mut group_type = None;
    for tok in head.split([',', ' ']).filter(|t| !t.is_empty()) {
        let (k, v) = tok.split_once('=').unwrap_or((tok, ""));
        match k {
            "group_id" => {
                group_id = Some(if v == "all" {
                    openflow::consts::OFPG_ALL
                } else {
                    num(v, "group_id")?
                })
            }
            "type" => {
                group_type =
                    Some(type_from_name(v).ok_or_else(|| format!("{v}: unknown group type"))?)
            }
            _ => return Err(format!("{k}: unknown keyword in group")),
        }
    }
    let buckets = parts
        .map(|b| parse_bucket(b.trim_end_matches([',', ' '])))
        .collect::<Result<Vec<_>, _>>()?;
    let group_id = group_id.ok_or("must specify a group_id")?;
    let group_type = match group_type {
        Some(t) => t,
        None if !need_type => GroupType::All,
        None => return Err("must specify a type".into()),
    };
    Ok(GroupSpec {
        group_id,
        group_type,
        buckets,
    })
}

/// Prints a group as `ovs-ofctl dump-groups` does.
pub fn format_group(g: &GroupDesc) -> String {
    let mut s = format!("group_id={},type={}", g.group_id, type_name(g.group_type));
    for b in &g.buckets {
        s.push_str(",bucket=");
        let mut params = Vec::new();
        if g.group_type == GroupType::Select {
            params.push(format!("weight:{}", b.weight));
        }
        if b.watch_port != port::ANY {
            params.push(format!("watch_port:{}", format_port(b.watch_port)));
        }
        if b.watch_group != OFPG_ANY {
            params.push(format!("watch_group:{}", b.watch_group));
        }
        params.push(format!("actions={}", format_actions(&b.actions)));
        s.push_str(&params.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::Action;

    #[test]
    fn select_group_with_weights_parses_and_prints_back() {
        let g = parse_group(
            "group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2",
            true,
        )
        .unwrap();
        assert_eq!(g.group_id, 1);
        assert_eq!(g.group_type, GroupType::Select);
        assert_eq!(g.buckets.len(), 2);
        assert_eq!(g.buckets[1].weight, 20);
        assert_eq!(
            g.buckets[1].actions,
            vec![Action::Output {
                port: 2,
                max_len: 0
            }]
        );
        let d = GroupDesc {
            group_type: g.group_type,
            group_id: g.group_id,
            buckets: g.buckets,
        };
        assert_eq!(
            format_group(&d),
            "group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2"
        );
    }

    #[test]
    fn bare_bucket_is_all_actions_and_ff_watch_port_is_read() {
        let g = parse_group(
            "group_id=2,type=ff,bucket=watch_port:3,actions=output:3,bucket=output:4",
            true,
        )
        .unwrap();
        assert_eq!(g.buckets[0].watch_port, 3);
        assert_eq!(
            g.buckets[1].actions,
            vec![Action::Output {
                port: 4,
                max_len: 0
            }]
        );
    }

    #[test]
    fn missing_type_is_refused_for_add_but_not_for_delete() {
        assert!(parse_group("group_id=2", true).is_err());
        assert_eq!(parse_group("group_id=2", false).unwrap().group_id, 2);
    }
}
