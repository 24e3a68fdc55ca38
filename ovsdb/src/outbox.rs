//! A connection's outgoing messages, serialized as they are queued and counted in bytes, so
//! a client that does not read its replies or updates cannot make the server's memory grow
//! without bound.
//!
//! - Over [`READ_PAUSE_BYTES`] the session stops reading requests from the client until the
//!   writer has caught up (backpressure).
//! - At [`MAX_BACKLOG_BYTES`] nothing more is queued: the outbox overflows and the session
//!   closes the connection (as ovsdb-server disconnects a client with an excessive backlog);
//!   the client resynchronises when it reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

/// Stop reading requests while this many bytes wait to be written.
pub const READ_PAUSE_BYTES: usize = 1 << 20;
/// Refuse to queue more once this many bytes wait to be written.
pub const MAX_BACKLOG_BYTES: usize = 4 << 20;

/// The backlog was full: the message was dropped and the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("excessive sending backlog ({queued} bytes)")]
pub struct Overflow {
    pub queued: usize,
}

struct State {
    queued: AtomicUsize,
    overflowed: AtomicBool,
    /// A write failed: the peer is gone and nothing more will be written.
    writer_failed: AtomicBool,
    /// Wakes the session when the backlog shrank below the read pause or the outbox overflowed.
    wake: Notify,
}

/// The sending half of a connection; cheap to clone (other sessions hold one to deliver lock
/// notifications).
#[derive(Clone)]
pub struct Outbox {
    tx: UnboundedSender<Vec<u8>>,
    state: Arc<State>,
}

impl Outbox {
    /// An outbox whose messages a new task writes to `wr`; the task ends when every clone of
    /// the outbox is dropped and the queue is written, or when a write fails.
    pub fn spawn<W: AsyncWrite + Send + Unpin + 'static>(mut wr: W) -> (Outbox, JoinHandle<()>) {
        let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
        let state = Arc::new(State {
            queued: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            writer_failed: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let st = state.clone();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    // Wake a session that stopped reading: it must notice the peer left.
                    st.writer_failed.store(true, Ordering::Release);
                    st.wake.notify_one();
                    break;
                }
                let before = st.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                if before >= READ_PAUSE_BYTES && before - bytes.len() < READ_PAUSE_BYTES {
                    st.wake.notify_one();
                }
            }
            let _ = wr.shutdown().await;
        });
        (Outbox { tx, state }, writer)
    }

    /// Serialize and queue `msg`. A message is refused (and the outbox marked overflowed) only
    /// when the backlog is already full, so one large reply still goes out to a reading client.
    pub fn send(&self, msg: &Value) -> Result<(), Overflow> {
        let queued = self.state.queued.load(Ordering::Acquire);
        if queued >= MAX_BACKLOG_BYTES || self.overflowed() {
            self.state.overflowed.store(true, Ordering::Release);
            self.state.wake.notify_one();
            return Err(Overflow { queued });
        }
        // Serializing a Value cannot fail (its keys are strings).
        let bytes = serde_json::to_vec(msg).unwrap_or_default();
        self.state.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        // The writer only stops after a failed write; the session notices the closed peer.
        let _ = self.tx.send(bytes);
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.state.queued.load(Ordering::Acquire)
    }

    /// Whether the session should hold off reading requests.
    pub fn paused(&self) -> bool {
        self.queued() >= READ_PAUSE_BYTES
    }

    /// Whether a message was refused: the connection must be closed.
    pub fn overflowed(&self) -> bool {
        self.state.overflowed.load(Ordering::Acquire)
    }

    /// Whether writing to the peer failed (it closed the connection or reset it).
    pub fn writer_failed(&self) -> bool {
        self.state.writer_failed.load(Ordering::Acquire)
    }

    /// Resolves when the backlog may have shrunk below the read pause, the outbox overflowed,
    /// or the writer failed.
    pub async fn wait_for_room(&self) {
        self.state.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn backlog_is_counted_in_bytes_refused_when_full_and_drained_by_the_writer() {
        let (mut peer, ours) = tokio::io::duplex(4096);
        let (out, _writer) = Outbox::spawn(ours);
        let big = json!("x".repeat(64 * 1024));
        let mut sent = 0;
        while out.send(&big).is_ok() {
            sent += 1;
            assert!(sent < 1000, "the backlog never filled");
        }
        assert!(out.overflowed());
        assert!(out.paused());
        assert!(out.queued() >= MAX_BACKLOG_BYTES);
        assert!(out.queued() < MAX_BACKLOG_BYTES + 70 * 1024);
        // Reading everything drains the count.
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        let want = sent * serde_json::to_vec(&big).unwrap().len();
        while total < want {
            total += peer.read(&mut buf).await.unwrap();
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while out.queued() != 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert!(!out.paused());
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_and_wakes_the_session() {
        let (peer, ours) = tokio::io::duplex(1024);
        let (out, writer) = Outbox::spawn(ours);
        out.send(&json!("z".repeat(READ_PAUSE_BYTES))).unwrap();
        assert!(out.paused());
        drop(peer);
        tokio::time::timeout(std::time::Duration::from_secs(10), out.wait_for_room())
            .await
            .unwrap();
        assert!(out.writer_failed());
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn one_message_larger_than_the_backlog_goes_out_when_the_queue_is_empty() {
        let (_peer, ours) = tokio::io::duplex(1 << 16);
        let (out, _writer) = Outbox::spawn(ours);
        out.send(&json!("y".repeat(MAX_BACKLOG_BYTES + 1))).unwrap();
        assert!(!out.overflowed());
        assert!(out.send(&json!(1)).is_err());
        assert!(out.overflowed());
    }
}
