//! ferrovs datapath: poll-mode threads that move packets between ports
//! through a cache hierarchy (exact-match cache, megaflow classifier) and
//! ask the slow path on a miss.

pub mod afpacket;
pub mod afxdp;
pub mod ct;
pub mod deviceless;
pub mod dpif;
pub mod dummy;
mod framebuf;
pub mod meter;
pub mod netdev;
pub mod offload;
pub mod packet;
pub mod port;
pub mod readiness;
mod sock;
pub mod tap;
pub mod tunnel;
pub mod wakeup;

pub use afpacket::{AfPacketOptions, AfPacketPort, RxRing};
pub use afxdp::{AfXdpOptions, AfXdpPort, XdpMode};
pub use ct::DpConntrack;
pub use dpif::{
    Datapath, DpConfig, DpError, EMC_INSERT_INV_PROB_DEFAULT, MegaflowInfo, MegaflowPredicate,
    PmdStats, PollPolicy, Sampled, Stage, UpcallHandler, UpcallResult,
};
pub use dummy::{DummyPort, SentFrame};
pub use packet::{BATCH_SIZE, Offload, Packet, PacketBatch};
pub use port::{
    OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, PortStatsSnapshot, RxQueue,
    TxQueue,
};
pub use tap::TapPort;
