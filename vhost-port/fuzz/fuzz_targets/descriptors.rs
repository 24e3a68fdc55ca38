//! Guest memory holding arbitrary rings and descriptor tables: draining and
//! filling them never panics or touches memory outside the guest's, and
//! every chain taken is returned (see `vhost_port_fuzz::descriptors`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vhost_port_fuzz::descriptors(data));
