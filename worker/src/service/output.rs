//! A connection's pending output, as the connection core queues it and the driver sends
//! it: [`OutQueue`], one pointer per connection, whose [`SendState`] (the chunk queue and
//! the iovec array of the writev in flight) is lent from the loop's [`SendPool`] for a
//! callback and handed back as soon as the queue is empty and no send is in flight, so
//! there is no allocation per send and nothing is held while idle.
//!
//! Hand-written: the shapes are specific to the loop's one-send-in-flight rule.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

/// Most iovecs one writev carries. Linux's IOV_MAX is 1024; 64 covers a pipelined
/// burst of small answers (head + body each) while keeping the per-connection iovec
/// array small.
pub const MAX_IOV: usize = 64;

/// Output at most this large that sits in several chunks is copied into one buffer and
/// sent with a plain `send` instead of a `writev`: copying is cheaper than the kernel's
/// vectored path over many chunks (measured, bench/RESULTS.md: a response head plus a
/// small file, pipelined answers, and the mirror's bursts of small frames, where 64 KiB
/// instead of 16 took fan-out at saturation from 4.4 to 8.1 M deliveries/s). 64 KiB is
/// what a connection may queue in one pass of `writeable` callbacks
/// (`service::WRITE_BATCH_BYTES`); larger output (a file piece) is one chunk anyway.
pub const COALESCE_MAX: usize = 64 * 1024;

/// The loop's coalescing buffer grows by this much at a time: one allocation serves
/// many sends (each takes a refcounted slice of it).
pub const COALESCE_SCRATCH: usize = 64 * 1024;

/// Drained send states the loop keeps for reuse whatever the load (128 x ~300 B = ~38
/// KiB per worker). A state is taken by every connection with output queued or a send in
/// flight, so while many connections write at once (a broadcast to thousands) the pool
/// keeps as many as were out at once, and `SendPool::trim` brings it back to this
/// once the load has passed: a burst across 10,000 connections does not leave ~300 bytes
/// per connection held while they sit idle afterwards, and a steady broadcast does not
/// allocate and free a state per connection per send (measured: malloc, realloc and free
/// were ~7 % of a worker's CPU relaying to 1,000 clients when the pool was capped here).
pub const SEND_POOL_MAX: usize = 128;

/// Most chunk slots (and iovecs) a pooled state keeps allocated: enough for a writev of
/// [`MAX_IOV`] chunks. A state that grew past this (a long queue behind a slow reader)
/// is shrunk before it goes back to the pool.
pub const SEND_STATE_KEEP: usize = MAX_IOV;

/// The storage of a connection's output while it has some: the chunks not yet
/// acknowledged by a send completion, their byte count, and the iovecs of the writev in
/// flight (the kernel reads them until the completion, so they live here, with the
/// chunks they point into, and not on a stack).
#[derive(Default)]
pub struct SendState {
    bufs: VecDeque<Bytes>,
    bytes: usize,
    iov: Vec<libc::iovec>,
}

/// A connection's pending output: `Bytes` chunks sent in order with writev; a partial
/// send is continued from where it stopped. One pointer: the storage ([`SendState`]) is
/// attached only while output is pending (see the module docs).
#[derive(Default)]
pub struct OutQueue {
    st: Option<Box<SendState>>,
}

impl Extend<Bytes> for OutQueue {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for b in iter {
            self.push(b);
        }
    }
}

impl crate::sink::Sink for OutQueue {
    fn push(&mut self, b: Bytes) {
        OutQueue::push(self, b);
    }

    fn queued(&self) -> usize {
        self.len()
    }
}

impl OutQueue {
    /// Queues `b` (empty chunks are dropped: they would only cost an iovec).
    #[inline]
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            // The loop lends a pooled state before every callback; a queue used outside
            // the loop (tests, tools) allocates its own.
            let st = self.st.get_or_insert_with(Box::default);
            st.bytes += b.len();
            st.bufs.push_back(b);
        }
    }

    /// Bytes queued and not yet acknowledged by a send completion.
    #[inline]
    pub fn len(&self) -> usize {
        self.st.as_ref().map_or(0, |s| s.bytes)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills the state's iovec array with the front chunks (at most [`MAX_IOV`]) and
    /// returns it; it stays put (and must not be touched) until the writev completes.
    /// `None` when nothing is queued.
    pub(crate) fn fill_iov(&mut self) -> Option<&[libc::iovec]> {
        let st = self.st.as_deref_mut()?;
        st.iov.clear();
        for b in st.bufs.iter().take(MAX_IOV) {
            st.iov.push(libc::iovec {
                iov_base: b.as_ptr() as *mut _,
                iov_len: b.len(),
            });
        }
        Some(&st.iov)
    }

    /// The front chunk, when it is the only one (sent with a plain send, no iovec).
    pub(crate) fn single(&self) -> Option<&Bytes> {
        let st = self.st.as_deref()?;
        if st.bufs.len() == 1 {
            st.bufs.front()
        } else {
            None
        }
    }

    /// Copies every queued chunk into one buffer split off `scratch` when the queue
    /// holds several chunks and at most [`COALESCE_MAX`] bytes, so the next send is a
    /// plain `send`. Returns whether it did.
    pub(crate) fn coalesce(&mut self, scratch: &mut BytesMut) -> bool {
        let Some(st) = self.st.as_deref_mut() else {
            return false;
        };
        if st.bufs.len() < 2 || st.bytes > COALESCE_MAX {
            return false;
        }
        if scratch.capacity() - scratch.len() < st.bytes {
            scratch.reserve(COALESCE_SCRATCH.max(st.bytes));
        }
        for b in st.bufs.drain(..) {
            scratch.extend_from_slice(&b);
        }
        st.bufs.push_back(scratch.split().freeze());
        true
    }

    /// Drops `n` sent bytes from the front.
    pub(crate) fn advance(&mut self, mut n: usize) {
        let Some(st) = self.st.as_deref_mut() else {
            return;
        };
        st.bytes -= n.min(st.bytes);
        while n > 0 {
            let Some(front) = st.bufs.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                st.bufs.pop_front();
            } else {
                front.advance(n);
                return;
            }
        }
    }

    /// Takes every queued chunk out, in order (output a transport transforms before it
    /// is sent: TLS seals it into records). Not while a send of this queue is in flight.
    pub(crate) fn drain_chunks(&mut self, mut f: impl FnMut(Bytes)) {
        if let Some(st) = self.st.as_deref_mut() {
            st.bytes = 0;
            for b in st.bufs.drain(..) {
                f(b);
            }
        }
    }

    /// Drops everything queued (the connection is being torn down). Not while a send is
    /// in flight: the kernel may still read the chunks.
    pub(crate) fn clear(&mut self) {
        if let Some(st) = self.st.as_deref_mut() {
            st.bufs.clear();
            st.bytes = 0;
        }
    }
}

/// The loop's drained [`SendState`]s, lent to connections while they have output.
#[derive(Default)]
pub struct SendPool {
    #[allow(
        clippy::vec_box,
        reason = "states move in and out of connections' OutQueue as boxes (one pointer there)"
    )]
    free: Vec<Box<SendState>>,
    /// States attached to connections now.
    lent: usize,
    /// Most states attached at once since the last [`SendPool::trim`].
    peak: usize,
}

impl SendPool {
    /// Gives `out` a state before a callback that may write, unless it has one (a
    /// pooled state: no allocation on the send path once the pool is warm).
    #[inline]
    pub(crate) fn lend(&mut self, out: &mut OutQueue) {
        if out.st.is_none() {
            out.st = Some(self.free.pop().unwrap_or_default());
            self.lent += 1;
            self.peak = self.peak.max(self.lent);
        }
    }

    /// Frees pooled states beyond what the load since the last call needed (at least
    /// [`SEND_POOL_MAX`] are kept). The loop calls it about once a second.
    pub(crate) fn trim(&mut self) {
        self.free.truncate(SEND_POOL_MAX.max(self.peak));
        self.peak = self.lent;
    }

    /// Takes `out`'s state back if its queue is empty. The caller guarantees no send is
    /// in flight (its iovecs and chunks are the kernel's until the completion).
    #[inline]
    pub(crate) fn reclaim(&mut self, out: &mut OutQueue) {
        if out.st.as_ref().is_some_and(|s| s.bytes == 0) {
            self.put(out.st.take());
        }
    }

    /// Takes `out`'s state back whatever it holds (the connection is gone, no op in
    /// flight); queued chunks are dropped.
    pub(crate) fn reclaim_all(&mut self, out: &mut OutQueue) {
        self.put(out.st.take());
    }

    fn put(&mut self, st: Option<Box<SendState>>) {
        let Some(mut st) = st else {
            return;
        };
        self.lent = self.lent.saturating_sub(1);
        if self.free.len() >= SEND_POOL_MAX.max(self.peak) {
            return;
        }
        st.bufs.clear();
        st.bytes = 0;
        st.iov.clear();
        st.bufs.shrink_to(SEND_STATE_KEEP);
        st.iov.shrink_to(SEND_STATE_KEEP);
        self.free.push(st);
    }

    /// States held for reuse.
    pub fn pooled(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_queue_partial_sends() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"hello "));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"world"));
        assert_eq!(q.len(), 11);
        assert_eq!(
            q.fill_iov().unwrap().len(),
            2,
            "the empty chunk takes no iovec"
        );
        q.advance(4);
        assert_eq!(q.len(), 7);
        assert_eq!(q.st.as_ref().unwrap().bufs.front().unwrap().as_ref(), b"o ");
        q.advance(2);
        assert_eq!(q.single().unwrap().as_ref(), b"world");
        q.advance(5);
        assert!(q.is_empty());
        q.advance(3); // over-advance is harmless
        assert!(q.is_empty());
    }

    #[test]
    fn empty_queue_has_no_storage() {
        let mut q = OutQueue::default();
        q.push(Bytes::new());
        assert!(q.st.is_none(), "an empty chunk allocates nothing");
        assert!(q.fill_iov().is_none());
        assert!(q.single().is_none());
        q.advance(1);
        q.clear();
        assert!(q.is_empty());
    }

    #[test]
    fn fill_iov_caps_at_max_iov() {
        let mut q = OutQueue::default();
        q.extend((0..MAX_IOV + 5).map(|_| Bytes::from_static(b"x")));
        assert_eq!(q.len(), MAX_IOV + 5);
        assert_eq!(q.fill_iov().unwrap().len(), MAX_IOV);
        q.advance(MAX_IOV);
        assert_eq!(q.fill_iov().unwrap().len(), 5);
    }

    #[test]
    fn pool_lends_and_reclaims_one_state() {
        let mut pool = SendPool::default();
        let mut q = OutQueue::default();
        pool.lend(&mut q);
        assert!(q.st.is_some(), "an empty pool lends a new state");
        q.push(Bytes::from_static(b"abc"));
        pool.reclaim(&mut q);
        assert!(q.st.is_some(), "a queue with output keeps its state");
        q.advance(3);
        pool.reclaim(&mut q);
        assert!(q.st.is_none());
        assert_eq!(pool.pooled(), 1);
        let ptr = {
            pool.lend(&mut q);
            q.st.as_deref().map(|s| s as *const SendState).unwrap()
        };
        q.push(Bytes::from_static(b"de"));
        assert_eq!(q.len(), 2);
        assert_eq!(pool.pooled(), 0);
        // The same state came back: no allocation on the second send.
        assert_eq!(q.st.as_deref().map(|s| s as *const SendState), Some(ptr));
        pool.reclaim_all(&mut q);
        assert!(q.is_empty());
        assert_eq!(pool.pooled(), 1);
        pool.lend(&mut q);
        assert!(q.is_empty(), "a reclaimed state comes back empty");
    }

    #[test]
    fn pool_is_bounded_and_trims_states() {
        let mut pool = SendPool::default();
        let mut qs: Vec<OutQueue> = (0..SEND_POOL_MAX + 10)
            .map(|_| {
                let mut q = OutQueue::default();
                q.extend((0..SEND_STATE_KEEP * 4).map(|_| Bytes::from_static(b"y")));
                q.fill_iov();
                q
            })
            .collect();
        for q in &mut qs {
            pool.reclaim_all(q);
            assert!(q.st.is_none());
        }
        assert_eq!(pool.pooled(), SEND_POOL_MAX);
        for st in &pool.free {
            assert!(st.bufs.capacity() < SEND_STATE_KEEP * 2);
            assert!(st.iov.capacity() <= SEND_STATE_KEEP);
        }
    }

    /// A broadcast that has thousands of connections writing at once keeps as many
    /// states pooled (no allocation per connection per send); once the load has passed,
    /// a trim gives all but `SEND_POOL_MAX` back.
    #[test]
    fn pool_keeps_what_the_load_needs_then_trims() {
        const N: usize = SEND_POOL_MAX * 8;
        let mut pool = SendPool::default();
        let mut qs: Vec<OutQueue> = (0..N).map(|_| OutQueue::default()).collect();
        for round in 0..3 {
            for q in &mut qs {
                pool.lend(q);
                q.push(Bytes::from_static(b"frame"));
            }
            let states: Vec<*const SendState> = qs
                .iter()
                .map(|q| q.st.as_deref().unwrap() as *const SendState)
                .collect();
            for q in &mut qs {
                q.advance(5);
                pool.reclaim(q);
            }
            assert_eq!(pool.pooled(), N, "round {round}");
            if round > 0 {
                // The states of the last round came back: nothing was allocated.
                let mut again: Vec<*const SendState> =
                    pool.free.iter().map(|b| &**b as *const SendState).collect();
                let mut states = states;
                again.sort();
                states.sort();
                assert_eq!(again, states, "round {round}");
            }
            pool.trim();
            assert_eq!(pool.pooled(), N, "round {round}: the load is still on");
        }
        pool.trim();
        assert_eq!(
            pool.pooled(),
            SEND_POOL_MAX,
            "a quiet second trims the pool"
        );
    }

    #[test]
    fn coalesce_small_multi_chunk_output() {
        let mut scratch = BytesMut::new();
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"));
        assert!(!q.coalesce(&mut scratch), "one chunk is sent as it is");
        q.push(Bytes::from_static(b"body"));
        assert!(q.coalesce(&mut scratch));
        assert_eq!(q.single().unwrap().as_ref(), b"HTTP/1.1 200 OK\r\n\r\nbody");
        assert_eq!(q.len(), 23);
        // At the limit it still coalesces; one byte over, the chunks go out as they are.
        let mut q = OutQueue::default();
        q.push(Bytes::from(vec![1u8; COALESCE_MAX - 1]));
        q.push(Bytes::from_static(b"x"));
        assert!(q.coalesce(&mut scratch));
        assert_eq!(q.len(), COALESCE_MAX);
        let mut q = OutQueue::default();
        q.push(Bytes::from(vec![1u8; COALESCE_MAX]));
        q.push(Bytes::from_static(b"x"));
        assert!(!q.coalesce(&mut scratch));
        assert!(q.single().is_none());
        // A partly sent queue coalesces what is left.
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"def"));
        q.advance(2);
        assert!(q.coalesce(&mut scratch));
        assert_eq!(q.single().unwrap().as_ref(), b"cdef");
    }
}
