//! Per-vCPU CPUID: the host's supported leaves with APIC ids, topology
//! and the hypervisor bit filled in.

use kvm_bindings::kvm_cpuid_entry2;

const LEAF_FEATURES: u32 = 0x1;
const LEAF_EXT_TOPOLOGY: u32 = 0xb;
const LEAF_V2_EXT_TOPOLOGY: u32 = 0x1f;
const ECX_HYPERVISOR: u32 = 1 << 31;
const EDX_HTT: u32 = 1 << 28;
const ECX_TSC_DEADLINE: u32 = 1 << 24;

/// Adjusts `entries` (from KVM_GET_SUPPORTED_CPUID) for vCPU `vcpu_id` of
/// `vcpu_count`.
pub fn patch_for_vcpu(entries: &mut [kvm_cpuid_entry2], vcpu_id: u8, vcpu_count: u8) {
    for e in entries.iter_mut() {
        match e.function {
            LEAF_FEATURES => {
                // EBX[31:24] initial APIC id, EBX[23:16] logical processors.
                e.ebx = (e.ebx & 0x0000_ffff)
                    | (u32::from(vcpu_id) << 24)
                    | (u32::from(vcpu_count) << 16);
                e.ecx |= ECX_HYPERVISOR;
                e.ecx &= !ECX_TSC_DEADLINE;
                if vcpu_count > 1 {
                    e.edx |= EDX_HTT;
                } else {
                    e.edx &= !EDX_HTT;
                }
            }
            LEAF_EXT_TOPOLOGY | LEAF_V2_EXT_TOPOLOGY => {
                // x2APIC id of this logical processor.
                e.edx = u32::from(vcpu_id);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx: 0xdead_0800,
            ecx: ECX_TSC_DEADLINE,
            edx: 0,
            ..Default::default()
        }
    }

    #[test]
    fn leaf1_carries_apic_id_count_and_hypervisor_bit() {
        let mut v = vec![entry(0, 0), entry(1, 0)];
        patch_for_vcpu(&mut v, 3, 4);
        let l1 = &v[1];
        assert_eq!(l1.ebx >> 24, 3);
        assert_eq!((l1.ebx >> 16) & 0xff, 4);
        assert_eq!(l1.ebx & 0xffff, 0x0800, "brand/clflush bits kept");
        assert_ne!(l1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(l1.ecx & ECX_TSC_DEADLINE, 0);
        assert_ne!(l1.edx & EDX_HTT, 0);
        assert_eq!(v[0].ebx, 0xdead_0800, "other leaves untouched");
    }

    #[test]
    fn single_vcpu_has_no_htt_and_topology_leaves_get_x2apic_id() {
        let mut v = vec![entry(1, 0), entry(0xb, 0), entry(0xb, 1)];
        v[0].edx = EDX_HTT;
        patch_for_vcpu(&mut v, 0, 1);
        assert_eq!(v[0].edx & EDX_HTT, 0);
        let mut w = vec![entry(0xb, 0), entry(0xb, 1)];
        patch_for_vcpu(&mut w, 7, 8);
        assert!(w.iter().all(|e| e.edx == 7));
    }
}
