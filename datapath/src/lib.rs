//! ferrovs datapath: poll-mode threads that move packets between ports
//! through a cache hierarchy (exact-match cache, megaflow classifier) and
//! ask the slow path on a miss.

pub mod packet;
pub mod port;

pub use packet::{BATCH_SIZE, Offload, Packet, PacketBatch};
pub use port::{OffloadCaps, Port, PortError, PortInfo, PortKind, PortStats, RxQueue, TxQueue};
