//! `add-tlv-map`, `del-tlv-map` and `dump-tlv-map`: the Geneve TLV map
//! messages as `ovs-ofctl` prints them.

use flows::tlv::{TlvCommand, format_tlv_table};
use openflow::msg::tlv::{TlvTableMod, TlvTableReply};

use super::print;

/// NXT_TLV_TABLE_MOD as `ovs-ofctl` prints it (for example after the
/// error that refused it).
pub fn mod_text(m: &TlvTableMod, version: u8, xid: u32) -> String {
    let mut s = print::header("NXT_TLV_TABLE_MOD", version, xid);
    let what = match m.command {
        TlvCommand::Add => "ADD",
        TlvCommand::Delete => "DEL",
        TlvCommand::Clear => {
            s.push_str("\n CLEAR");
            return s;
        }
    };
    s.push_str(&format!(
        "\n {what} mapping table:\n{}",
        format_tlv_table(&m.mappings)
    ));
    s
}

/// The dump-tlv-map output.
pub fn reply_text(r: &TlvTableReply, version: u8, xid: u32) -> String {
    let allocated: u32 = r.mappings.iter().map(|m| u32::from(m.len)).sum();
    format!(
        "{}\n max option space={} max fields={}\n allocated option space={allocated}\n\n mapping table:\n{}",
        print::header("NXT_TLV_TABLE_REPLY", version, xid),
        r.max_option_space,
        r.max_fields,
        format_tlv_table(&r.mappings)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flows::tlv::TlvMapping;

    /// Stock `ovs-ofctl -O OpenFlow15 dump-tlv-map` against stock
    /// ovs-vswitchd after `add-tlv-map br0
    /// "{class=0x0102,type=0x80,len=4}->tun_metadata0"` printed exactly this.
    #[test]
    fn dump_tlv_map_prints_like_ovs_ofctl() {
        let r = TlvTableReply {
            max_option_space: 256,
            max_fields: 64,
            mappings: vec![TlvMapping {
                class: 0x102,
                type_: 0x80,
                len: 4,
                index: 0,
            }],
        };
        assert_eq!(
            reply_text(&r, 6, 2),
            "NXT_TLV_TABLE_REPLY (OF1.5) (xid=0x2):\n max option space=256 max fields=64\n \
             allocated option space=4\n\n mapping table:\n  class  type  length  match field\n \
             ------  ----  ------  --------------\n  0x102  0x80       4  tun_metadata0"
        );
        let m = TlvTableMod {
            command: TlvCommand::Clear,
            mappings: vec![],
        };
        assert_eq!(
            mod_text(&m, 6, 5),
            "NXT_TLV_TABLE_MOD (OF1.5) (xid=0x5):\n CLEAR"
        );
    }
}
