//! OpenFlow 1.0 / 1.3 / 1.4 / 1.5 codec (with bundles and the Nicira
//! extension messages), the switch-side connection state machine and a
//! small client for the CLI tools.
//!
//! - [`decode`] / [`encode`]: bytes ↔ [`Message`] for either version,
//!   bounds-checked and panic-free on any input; [`codec`] frames and
//!   dispatches, [`msg`] holds each message family's layout in every
//!   version;
//! - [`conn::OfConnection`]: framing, hello/version negotiation, echo,
//!   barrier, roles, and dispatch to a [`conn::SwitchAgent`];
//! - [`client::OfClient`]: connect, hello, request/reply by xid;
//! - [`convert`]: flow statistics ↔ `flows::table` rules (flow mods and
//!   groups are `flows`'s own types, wrapped with their wire-only fields);
//! - [`testing`]: an in-memory switch served over TCP/unix sockets, for
//!   tests of OpenFlow clients (ofctl, ovs-ofctl, controllers).

pub mod actions;
pub mod client;
pub mod codec;
pub mod conn;
pub mod consts;
pub mod convert;
pub mod error;
pub mod match10;
pub mod message;
pub mod msg;
mod nxactions;
pub mod oxm;
pub mod testing;
pub mod wire;

pub use client::{ClientError, OfClient};
pub use codec::{decode, encode, encode_multipart_reply};
pub use conn::{ConnConfig, OfConnection, SwitchAgent};
pub use error::{DecodeError, EncodeError, OfError};
pub use message::*;
