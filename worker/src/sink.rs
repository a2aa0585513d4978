//! [`Sink`]: where the layers above the connection core put the bytes they send.
//!
//! The plugin API and the sessions see a connection's output only through this: queue a
//! chunk, ask how much is queued. The core's output queue implements it (and will seal
//! it with TLS at flush, or frame it as HTTP/2 DATA, without the writers knowing).

use bytes::Bytes;

/// A connection's (or a stream's) pending output, as writers see it.
pub trait Sink {
    /// Queues `b` to be sent after everything queued before it.
    fn push(&mut self, b: Bytes);
    /// Bytes queued and not yet sent.
    fn queued(&self) -> usize;
}

/// A [`Sink`] as the `Extend<Bytes>` the sans-IO roles write frames into.
pub struct Extender<'a>(pub &'a mut dyn Sink);

impl Extend<Bytes> for Extender<'_> {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for b in iter {
            self.0.push(b);
        }
    }
}
