//! Accept loops that outlive hostile clients: they back off and keep accepting when `accept`
//! fails (out of file descriptors, out of memory), and they cap how many connections are
//! open at once, closing the ones over the cap at once so their descriptors are freed.
//!
//! Every listener of the daemon (the DB sockets, `vswitchd.ctl`, `BRIDGE.mgmt`) goes through
//! [`serve_connections`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

/// How many connections one listener serves at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// The first pause after a failed `accept`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between retries of a failing `accept`.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning of each kind per listener in this long.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A listening socket.
pub trait Accept: Send + 'static {
    type Stream: Send + 'static;
    /// The next connection.
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Lets one message through per [`LOG_INTERVAL`] and counts the ones held back.
#[derive(Debug, Default)]
struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// `Some(number held back since the last message)` when a message may be logged now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The pause before retrying after `failures` consecutive failed accepts.
fn backoff(failures: u32) -> Duration {
    // 100 ms, growing by half each time, up to MAX_BACKOFF.
    let mut d = FIRST_BACKOFF;
    for _ in 1..failures.min(16) {
        d = (d * 3 / 2).min(MAX_BACKOFF);
    }
    d
}

/// Accept connections on `listener` forever, running `handle` for each on its own task while
/// fewer than `max_connections` are open. `name` identifies the listener in log messages.
pub async fn serve_connections<L, F, Fut>(
    listener: L,
    name: &str,
    max_connections: usize,
    mut handle: F,
) -> Infallible
where
    L: Accept,
    F: FnMut(L::Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut failures = 0u32;
    let mut accept_log = RateLimit::default();
    let mut full_log = RateLimit::default();
    loop {
        match listener.accept_stream().await {
            Ok(stream) => {
                failures = 0;
                match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        let fut = handle(stream);
                        tokio::spawn(async move {
                            fut.await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        drop(stream);
                        if let Some(refused) = full_log.allow(Instant::now()) {
                            tracing::warn!(
                                listener = name,
                                max_connections,
                                refused_since_last_warning = refused,
                                "connection limit reached; closing new connections"
                            );
                        }
                    }
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = backoff(failures);
                if let Some(held_back) = accept_log.allow(Instant::now()) {
                    tracing::warn!(
                        listener = name,
                        error = %e,
                        retry_in_ms = pause.as_millis() as u64,
                        failures_since_last_warning = held_back,
                        "accept failed; retrying"
                    );
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_small_grows_and_is_capped() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert!(backoff(2) > backoff(1));
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }

    #[test]
    fn rate_limit_lets_one_message_through_per_interval_and_counts_the_rest() {
        let mut rl = RateLimit::default();
        let t0 = Instant::now();
        assert_eq!(rl.allow(t0), Some(0));
        assert_eq!(rl.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(rl.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(
            rl.allow(t0 + LOG_INTERVAL + Duration::from_secs(1)),
            Some(2)
        );
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_slots_are_reused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // Each handler answers one byte then holds its connection until the peer closes.
        tokio::spawn(serve_connections(listener, "test", 2, |mut s| async move {
            let _ = s.write_all(b"k").await;
            let mut b = [0u8; 1];
            let _ = s.read(&mut b).await;
        }));
        let mut a = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut b = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).await.unwrap(), 1);
        assert_eq!(b.read(&mut buf).await.unwrap(), 1);
        // The third is over the cap: closed without being served.
        let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        // Closing one frees its slot for the next client.
        drop(a);
        let mut served = false;
        for _ in 0..100 {
            let mut d = tokio::net::UnixStream::connect(&path).await.unwrap();
            if d.read(&mut buf).await.unwrap_or(0) == 1 {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(served, "a freed slot was never reused");
        drop(b);
    }

    /// A listener that replays a script of accept results.
    struct Scripted(tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<std::io::Result<u32>>>);

    impl Accept for Scripted {
        type Stream = u32;
        async fn accept_stream(&self) -> std::io::Result<u32> {
            match self.0.lock().await.recv().await {
                Some(r) => r,
                None => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn accept_errors_are_retried_and_later_connections_still_served() {
        let (script, rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..3 {
            script
                .send(Err(std::io::Error::from_raw_os_error(libc::EMFILE)))
                .unwrap();
        }
        script.send(Ok(7)).unwrap();
        let (served_tx, mut served) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(serve_connections(
            Scripted(tokio::sync::Mutex::new(rx)),
            "test",
            10,
            move |n| {
                let tx = served_tx.clone();
                async move {
                    let _ = tx.send(n);
                }
            },
        ));
        let got = tokio::time::timeout(Duration::from_secs(30), served.recv()).await;
        assert_eq!(got.ok().flatten(), Some(7));
    }
}
