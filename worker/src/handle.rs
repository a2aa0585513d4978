//! [`ServiceHandle`]: how other threads of a worker reach its service loop
//! (lws_cancel_service, done with an eventfd).
//!
//! A handle is `Send + Sync + Clone`. `post(msg)` queues a message on a crossbeam channel and
//! wakes the loop; `cancel_service()` only wakes it. The loop always has a read armed on
//! the eventfd; when it completes, the loop drains the channel and calls every protocol's
//! `event_wait_cancelled`. Other threads never touch a connection.

use std::any::Any;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

/// A message posted to the loop from another thread.
pub type Posted = Box<dyn Any + Send>;

/// The loop's end: the eventfd and the receiving side of the channel.
pub struct Waker {
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) rx: Receiver<Posted>,
}

/// Wakes a worker's service loop from any thread.
#[derive(Clone)]
pub struct ServiceHandle {
    fd: Arc<OwnedFd>,
    tx: Sender<Posted>,
}

impl ServiceHandle {
    /// Creates the eventfd (non-blocking, close-on-exec) and the channel.
    pub fn new() -> std::io::Result<(ServiceHandle, Waker)> {
        let fd = nix::sys::eventfd::EventFd::from_flags(
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
        )?;
        let fd = Arc::new(OwnedFd::from(fd));
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok((ServiceHandle { fd: fd.clone(), tx }, Waker { fd, rx }))
    }

    /// Wakes the loop: it calls every protocol's `event_wait_cancelled` soon after.
    pub fn cancel_service(&self) {
        // An eventfd write of 1 only fails with EAGAIN when the counter is about to
        // overflow, which means a wake is already pending: nothing is lost.
        let _ = nix::unistd::write(self.fd.as_fd(), &1u64.to_ne_bytes());
    }

    /// Queues `msg` for the loop and wakes it. Returns the message back if the loop is gone.
    pub fn post<M: Any + Send>(&self, msg: M) -> Result<(), M> {
        match self.tx.send(Box::new(msg)) {
            Ok(()) => {
                self.cancel_service();
                Ok(())
            }
            Err(e) => match e.into_inner().downcast::<M>() {
                Ok(m) => Err(*m),
                Err(_) => unreachable!("the message sent is the message returned"),
            },
        }
    }
}

impl Waker {
    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}
