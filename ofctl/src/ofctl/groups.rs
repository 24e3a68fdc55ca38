//! The group arguments of add-group, mod-group and del-groups: the group
//! syntax of `flows::text`, with the checks ovs-ofctl makes per command.

use flows::group::{GROUP_ALL, Group, GroupType};
use flows::text::parse_group;

/// True when the part of `s` before the first bucket names the group type.
fn names_a_type(s: &str) -> bool {
    s.split("bucket=")
        .next()
        .unwrap_or("")
        .split([',', ' '])
        .any(|t| t.trim_start().starts_with("type="))
}

/// add-group / mod-group: a whole group, whose type must be given.
pub fn parse_group_mod(s: &str) -> Result<Group, String> {
    if !names_a_type(s) {
        return Err("must specify a type".into());
    }
    parse_group(s).map_err(|e| e.to_string())
}

/// del-groups: the group to delete (only its id counts); every group
/// without an argument.
pub fn parse_group_delete(s: Option<&str>) -> Result<Group, String> {
    match s {
        Some(s) => parse_group(s).map_err(|e| e.to_string()),
        None => Ok(Group {
            id: GROUP_ALL,
            kind: GroupType::All,
            buckets: Vec::new(),
            selection: Default::default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::Action;
    use flows::text::format_group;

    #[test]
    fn select_group_with_weights_parses_and_prints_back() {
        let text = "group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2";
        let g = parse_group_mod(text).unwrap();
        assert_eq!(g.id, 1);
        assert_eq!(g.kind, GroupType::Select);
        assert_eq!(g.buckets.len(), 2);
        assert_eq!(g.buckets[1].weight, 20);
        assert_eq!(
            g.buckets[1].actions,
            vec![Action::Output {
                port: 2,
                max_len: 0
            }]
        );
        assert_eq!(format_group(&g), text);
    }

    #[test]
    fn bare_bucket_is_all_actions_and_ff_watch_port_is_read() {
        let g = parse_group_mod(
            "group_id=2,type=ff,bucket=watch_port:3,actions=output:3,bucket=output:4",
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
        assert_eq!(
            parse_group_mod("group_id=2,bucket=output:1,type_of=x").unwrap_err(),
            "must specify a type"
        );
        assert_eq!(parse_group_delete(Some("group_id=2")).unwrap().id, 2);
        assert_eq!(parse_group_delete(None).unwrap().id, GROUP_ALL);
    }
}
