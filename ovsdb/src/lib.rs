//! OVSDB engine (RFC 7047) with redb persistence, a JSON-RPC server and a blocking client.
//!
//! - [`Db`]: the database handle vswitchd embeds (`open`, `transact`, `snapshot`, `subscribe`).
//! - [`server::serve`]: the JSON-RPC server (unix socket and `ptcp:`) stock OVS clients talk to.
//! - [`client::Client`]: a small blocking JSON-RPC client (used by `vsctl`).

//!
//! The feature `server` (on by default) brings the embedded database, its redb store, the
//! server and tokio; a client (`vsctl`) builds without it.

pub mod client;
pub mod condition;
pub mod data;
pub mod datum;
#[cfg(feature = "server")]
pub mod db;
pub mod error;
pub mod integrity;
pub mod jsonrpc;
#[cfg(feature = "server")]
pub mod listener;
pub mod monitor;
pub mod ops;
#[cfg(feature = "server")]
pub mod outbox;
pub mod schema;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod store;
pub mod txn;

pub use data::{ChangeSet, Data, Row, RowChange};
pub use datum::{Atom, Datum};
#[cfg(feature = "server")]
pub use db::{Commit, Db};
pub use error::{DbError, OvsdbError};
pub use schema::Schema;
