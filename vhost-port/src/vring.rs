//! The vring type handed to vhost-user-backend: its `VringMutex` plus a way
//! for the port to get hold of the vrings the request handler creates (the
//! handler keeps them private).

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::sync::MutexGuard;

use vhost_user_backend::{VringMutex, VringState, VringStateGuard, VringStateMutGuard, VringT};
use virtio_queue::Error as VirtQueError;

use crate::session::Gm;

thread_local! {
    /// Vrings created on this thread since the last [`take_created`].
    static CREATED: RefCell<Vec<NetVring>> = const { RefCell::new(Vec::new()) };
}

/// Vrings created on this thread (in creation order, i.e. queue order)
/// since the last call. `VhostUserDaemon::new` creates them synchronously.
pub fn take_created() -> Vec<NetVring> {
    CREATED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// A vring shared by the request handler (control thread) and the PMDs.
#[derive(Clone)]
pub struct NetVring(VringMutex<Gm>);

impl<'a> VringStateGuard<'a, Gm> for NetVring {
    type G = MutexGuard<'a, VringState<Gm>>;
}

impl<'a> VringStateMutGuard<'a, Gm> for NetVring {
    type G = MutexGuard<'a, VringState<Gm>>;
}

impl VringT<Gm> for NetVring {
    fn new(mem: Gm, max_queue_size: u16) -> Result<Self, VirtQueError> {
        let v = NetVring(VringMutex::new(mem, max_queue_size)?);
        CREATED.with(|c| c.borrow_mut().push(v.clone()));
        Ok(v)
    }
    fn get_ref(&self) -> MutexGuard<'_, VringState<Gm>> {
        self.0.get_ref()
    }
    fn get_mut(&self) -> MutexGuard<'_, VringState<Gm>> {
        self.0.get_mut()
    }
    fn add_used(&self, desc_index: u16, len: u32) -> Result<(), VirtQueError> {
        self.0.add_used(desc_index, len)
    }
    fn signal_used_queue(&self) -> io::Result<()> {
        self.0.signal_used_queue()
    }
    fn enable_notification(&self) -> Result<bool, VirtQueError> {
        self.0.enable_notification()
    }
    fn disable_notification(&self) -> Result<(), VirtQueError> {
        self.0.disable_notification()
    }
    fn needs_notification(&self) -> Result<bool, VirtQueError> {
        self.0.needs_notification()
    }
    fn set_enabled(&self, enabled: bool) {
        self.0.set_enabled(enabled)
    }
    fn set_queue_info(&self, desc: u64, avail: u64, used: u64) -> Result<(), VirtQueError> {
        self.0.set_queue_info(desc, avail, used)
    }
    fn queue_next_avail(&self) -> u16 {
        self.0.queue_next_avail()
    }
    fn set_queue_next_avail(&self, base: u16) {
        self.0.set_queue_next_avail(base)
    }
    fn set_queue_next_used(&self, idx: u16) {
        self.0.set_queue_next_used(idx)
    }
    fn queue_used_idx(&self) -> Result<u16, VirtQueError> {
        self.0.queue_used_idx()
    }
    fn set_queue_size(&self, num: u16) {
        self.0.set_queue_size(num)
    }
    fn set_queue_event_idx(&self, enabled: bool) {
        self.0.set_queue_event_idx(enabled)
    }
    fn set_queue_ready(&self, ready: bool) {
        self.0.set_queue_ready(ready)
    }
    fn set_kick(&self, file: Option<File>) {
        self.0.set_kick(file)
    }
    fn read_kick(&self) -> io::Result<bool> {
        self.0.read_kick()
    }
    fn set_call(&self, file: Option<File>) {
        self.0.set_call(file)
    }
    fn set_err(&self, file: Option<File>) {
        self.0.set_err(file)
    }
}
