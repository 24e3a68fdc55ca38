//! x86-64 boot structures: what the launcher writes into guest memory and
//! vCPU registers before the first instruction runs.

pub mod bootparams;
pub mod cpuid;
pub mod gdt;
pub mod mptable;
pub mod paging;
pub mod regs;
