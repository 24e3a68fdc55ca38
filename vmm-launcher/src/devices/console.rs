//! The serial console: a 16550 (vm-superio) whose output goes to stdio or a
//! file and to every client attached to the VM's console socket.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// Raises the serial IRQ through a KVM irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Where console output goes.
pub enum ConsoleSink {
    Stdout,
    File(std::fs::File),
    /// Kept in memory (tests).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// Output side shared by the serial device and the console socket.
#[derive(Clone)]
pub struct ConsoleOut {
    inner: Arc<Mutex<ConsoleOutInner>>,
}

struct ConsoleOutInner {
    sink: ConsoleSink,
    clients: Vec<UnixStream>,
}

impl ConsoleOut {
    pub fn new(sink: ConsoleSink) -> ConsoleOut {
        ConsoleOut {
            inner: Arc::new(Mutex::new(ConsoleOutInner {
                sink,
                clients: Vec::new(),
            })),
        }
    }

    fn attach(&self, client: UnixStream) {
        if let Ok(mut g) = self.inner.lock() {
            g.clients.push(client);
        }
    }
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("console lock poisoned"))?;
        match &mut g.sink {
            ConsoleSink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf)?;
                out.flush()?;
            }
            ConsoleSink::File(f) => f.write_all(buf)?,
            ConsoleSink::Buffer(b) => b
                .lock()
                .map_err(|_| io::Error::other("buffer lock poisoned"))?
                .extend_from_slice(buf),
        }
        // Drop clients that went away.
        g.clients.retain_mut(|c| c.write_all(buf).is_ok());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The guest's COM1.
pub type SerialDevice = Serial<IrqTrigger, NoEvents, ConsoleOut>;

/// Feeds bytes typed by a user into the serial receive FIFO.
pub fn feed_input(serial: &Arc<Mutex<SerialDevice>>, mut input: impl Read) {
    let mut buf = [0u8; 64];
    loop {
        match input.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut rest = &buf[..n];
                while !rest.is_empty() {
                    let sent = match serial.lock() {
                        Ok(mut s) => s.enqueue_raw_bytes(rest).unwrap_or(0),
                        Err(_) => return,
                    };
                    rest = &rest[sent..];
                    if sent == 0 {
                        // FIFO full: let the guest drain it.
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
        }
    }
}

/// Serves the console socket: each client sees the output from now on and
/// its input goes to the guest.
pub fn serve_socket(
    path: &Path,
    out: ConsoleOut,
    serial: Arc<Mutex<SerialDevice>>,
) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new()
        .name("console-sock".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(writer) = stream.try_clone() {
                    out.attach(writer);
                }
                let serial = serial.clone();
                let _ = std::thread::Builder::new()
                    .name("console-in".into())
                    .spawn(move || feed_input(&serial, stream));
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_output_reaches_the_sink_and_attached_clients() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let out = ConsoleOut::new(ConsoleSink::Buffer(buf.clone()));
        let (a, mut b) = UnixStream::pair().unwrap();
        out.attach(a);
        let trig = IrqTrigger(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let mut serial = Serial::new(trig, out);
        for c in b"hi\n" {
            serial.write(0, *c).unwrap();
        }
        assert_eq!(&*buf.lock().unwrap(), b"hi\n");
        let mut got = [0u8; 3];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi\n");
    }

    #[test]
    fn input_is_queued_for_the_guest_to_read() {
        let out = ConsoleOut::new(ConsoleSink::Buffer(Arc::default()));
        let trig = IrqTrigger(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let serial = Arc::new(Mutex::new(Serial::new(trig, out)));
        feed_input(&serial, &b"ok"[..]);
        let mut s = serial.lock().unwrap();
        // LSR bit 0: data ready; RBR at offset 0.
        assert_eq!(s.read(5) & 1, 1);
        assert_eq!(s.read(0), b'o');
        assert_eq!(s.read(0), b'k');
    }
}
