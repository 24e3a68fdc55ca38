//! Any byte string: decode must not panic, and whatever decodes must
//! re-encode and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((h, msg)) = openflow::decode(data)
        && let Ok(bytes) = openflow::encode(&msg, h.version, h.xid)
    {
        let (_, again) = openflow::decode(&bytes).expect("re-encoded message must decode");
        assert_eq!(again, msg);
    }
});
