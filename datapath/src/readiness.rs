//! Readiness flags for receive queues whose only way to look for a frame is
//! a system call (TAP devices: `readv`). A PMD iteration would otherwise
//! pay that syscall on every poll, idle or not; instead one shared watcher
//! thread waits on all of them with edge-triggered epoll and raises a flag
//! per queue, and the PMD reads a queue only while its flag is up (one
//! relaxed load per poll when idle).
//!
//! Protocol, so that no frame is left unread: the PMD takes the flag
//! ([`ReadyFlag::take`]) and then reads until the device says `EAGAIN`; if
//! it stops early (the batch is full) it raises the flag again
//! ([`ReadyFlag::raise`]). A frame queued after the take is either read by
//! that loop or, arriving after its `EAGAIN`, wakes the watcher (edge
//! triggered: every wake-up of the device's wait queue is an edge), which
//! raises the flag again.
//!
//! If the watcher cannot be set up (no epoll), flags stay up for good and
//! queues are polled as before.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One queue's flag; unregisters itself when dropped.
#[derive(Debug)]
pub struct ReadyFlag {
    flag: Arc<AtomicBool>,
    /// `None` when the queue is polled unconditionally (no watcher).
    reg: Option<(u64, RawFd)>,
}

impl ReadyFlag {
    /// Watches `fd` (which must stay open until the flag is dropped). The
    /// flag starts up, so frames queued before registration are read.
    pub fn watch(fd: RawFd) -> ReadyFlag {
        let flag = Arc::new(AtomicBool::new(true));
        let reg = match watcher() {
            Some(w) => match w.register(fd, flag.clone()) {
                Ok(token) => Some((token, fd)),
                Err(e) => {
                    tracing::warn!("fd {fd}: readiness watch failed, polling it: {e}");
                    None
                }
            },
            None => None,
        };
        ReadyFlag { flag, reg }
    }

    /// Whether the queue may hold frames; lowers the flag. The caller then
    /// reads until the queue is empty, or calls [`ReadyFlag::raise`].
    #[inline]
    pub fn take(&self) -> bool {
        if self.reg.is_none() {
            return true;
        }
        // Cheap test first: the idle case is one load, no write.
        self.flag.load(Ordering::Relaxed) && self.flag.swap(false, Ordering::Acquire)
    }

    /// Marks the queue as possibly non-empty (the reader stopped before it
    /// saw `EAGAIN`).
    #[inline]
    pub fn raise(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// Whether a watcher thread drives this flag (false: always polled).
    pub fn watched(&self) -> bool {
        self.reg.is_some()
    }
}

impl Drop for ReadyFlag {
    fn drop(&mut self) {
        if let Some((token, fd)) = self.reg
            && let Some(w) = watcher()
        {
            w.unregister(token, fd);
        }
    }
}

struct Watcher {
    epfd: OwnedFd,
    flags: Mutex<HashMap<u64, Arc<AtomicBool>>>,
    next: AtomicU64,
}

fn watcher() -> Option<&'static Watcher> {
    static W: OnceLock<Option<&'static Watcher>> = OnceLock::new();
    *W.get_or_init(|| match Watcher::start() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("readiness watcher unavailable, TAP queues are polled: {e}");
            None
        }
    })
}

impl Watcher {
    fn start() -> io::Result<&'static Watcher> {
        // SAFETY: plain epoll_create1(2); the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // The watcher lives as long as the process (one per process, like
        // its thread); leaking it gives the thread a 'static reference.
        let w: &'static Watcher = Box::leak(Box::new(Watcher {
            // SAFETY: fd was just created and is owned by nobody else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            flags: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }));
        std::thread::Builder::new()
            .name("rx-ready".into())
            .spawn(move || w.run())?;
        Ok(w)
    }

    fn register(&self, fd: RawFd, flag: Arc<AtomicBool>) -> io::Result<u64> {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(token, flag);
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl on our epoll fd with a live event struct.
        let r = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            let e = io::Error::last_os_error();
            self.lock().remove(&token);
            return Err(e);
        }
        Ok(token)
    }

    fn unregister(&self, token: u64, fd: RawFd) {
        // The event argument is ignored by DEL (non-null for old kernels).
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: epoll_ctl on our epoll fd with a live event struct; a
        // closed or unknown fd only yields an error.
        unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
        self.lock().remove(&token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicBool>>> {
        self.flags.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: epoll_wait fills at most `events.len()` live entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epfd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    -1,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("readiness watcher: epoll_wait: {e}");
                // Raise every flag for good: queues get polled.
                for f in self.lock().values() {
                    f.store(true, Ordering::Release);
                }
                return;
            }
            let flags = self.lock();
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if let Some(f) = flags.get(&token) {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socketpair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: socketpair(2) writes two fds into the live array.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn send(fd: &OwnedFd) {
        // SAFETY: writes one byte from a live buffer.
        let r = unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(r, 1);
    }

    /// Reads until EAGAIN; returns how many datagrams were read.
    fn drain(fd: &OwnedFd) -> usize {
        let mut n = 0;
        let mut b = [0u8; 8];
        // SAFETY: reads into a live buffer of the stated length.
        while unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) } > 0 {
            n += 1;
        }
        n
    }

    /// Waits (bounded, generously) until the flag is raised.
    fn eventually_taken(f: &ReadyFlag) -> bool {
        for _ in 0..20_000 {
            if f.take() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        false
    }

    #[test]
    fn a_flag_is_raised_by_every_datagram_that_arrives_after_the_queue_was_drained() {
        let (rx, tx) = socketpair();
        let f = ReadyFlag::watch(rx.as_raw_fd());
        assert!(f.watched(), "epoll is available on Linux");
        // Up at first: frames queued before the watch are not missed.
        assert!(f.take());
        assert!(!f.take(), "taking lowers the flag");
        for round in 0..50 {
            send(&tx);
            assert!(eventually_taken(&f), "round {round}: flag never raised");
            assert_eq!(drain(&rx), 1, "round {round}");
        }
    }

    #[test]
    fn a_reader_that_stops_early_raises_the_flag_itself() {
        let (rx, tx) = socketpair();
        let f = ReadyFlag::watch(rx.as_raw_fd());
        send(&tx);
        send(&tx);
        assert!(eventually_taken(&f));
        // Read one of two, as a full batch would, and say so.
        let mut b = [0u8; 8];
        // SAFETY: reads into a live buffer of the stated length.
        let got = unsafe { libc::read(rx.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
        assert_eq!(got, 1);
        f.raise();
        assert!(f.take());
        assert_eq!(drain(&rx), 1);
    }

    #[test]
    fn dropping_a_flag_unregisters_it() {
        let (rx, tx) = socketpair();
        let w = watcher().expect("epoll is available on Linux");
        let f = ReadyFlag::watch(rx.as_raw_fd());
        let token = f.reg.expect("watched").0;
        assert!(w.lock().contains_key(&token));
        drop(f);
        assert!(!w.lock().contains_key(&token));
        // The fd can be watched again after that.
        let g = ReadyFlag::watch(rx.as_raw_fd());
        assert!(g.watched());
        send(&tx);
        assert!(eventually_taken(&g));
    }
}
