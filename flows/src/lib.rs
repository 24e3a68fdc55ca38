//! ferrovs flows: pure, I/O-free switch logic shared by the datapath, the
//! daemon and the tools. Nothing in this crate touches a socket, a file or a
//! thread; everything is a function of its inputs (time is passed in).

pub mod action;
pub mod bond;
pub mod classifier;
pub mod dpaction;
pub mod emc;
pub mod field;
pub mod group;
pub mod hash;
pub mod key;
pub mod mac_learning;
pub mod matches;
pub mod meter;
pub mod names;
pub mod nxaction;
pub mod nxhash;
pub mod packet;
pub mod parse;
pub mod table;
pub mod text;
pub mod tlv;
pub mod xlate;

pub use action::{Action, PortNo, SubField};
pub use dpaction::{DpAction, DpPortNo, UserspaceReason};
pub use field::Field;
pub use key::FlowKey;
pub use matches::Match;
