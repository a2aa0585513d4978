//! The provided-buffer ring multishot recv draws from (io_uring `IORING_REGISTER_PBUF_RING`).
//!
//! One ring per worker: up to `max` buffers of `size` bytes in one mapping, and the ring
//! of entries the kernel reads them from. The kernel picks a buffer for each recv
//! completion and names it in the CQE; the loop hands it back with [`BufRing::recycle`]
//! once the bytes have been consumed (or copied into a connection's reassembly buffer),
//! and publishes the returned buffers with one tail store per pass over the completion
//! queue ([`BufRing::publish`]).
//!
//! Growth: the ring has room for `max` entries, but only `count` buffers are handed to
//! the kernel at first; [`BufRing::grow`] adds more (doubling, up to `max`) when the
//! loop's load keeps running the ring dry. Buffers are handed out in ring order, so every published buffer has
//! its first page touched by even a small recv: publishing all `max` at start would cost
//! their pages in resident memory on an idle worker (256 x 8 KiB: 1 MiB, ~100 B per
//! connection over 10,000 idle WebSockets), whereas a worker that never sees a burst
//! keeps `count` of them, and one under load grows to what its bursts need. The mapping
//! is reserved for `max` from the start (untouched pages cost no memory), so buffer
//! addresses never move.
//!
//! This module and the submission of ops are the only `unsafe` in the worker: the kernel
//! writes into this memory behind Rust's back, so the memory must stay put and be neither
//! read nor written by us while the kernel owns a buffer.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// One buffer the kernel filled for a recv completion and handed to us: the only way to
/// read a buffer ([`BufRing::data`]) and to give it back ([`BufRing::recycle`], which
/// takes the token). Neither `Copy` nor `Clone`, and made only from a completion
/// ([`RecvBuf::from_completion`]), so safe code cannot read a buffer the kernel owns nor
/// return one twice (which would let the kernel fill it while it is still being read).
/// Dropping a token without recycling it loses the buffer to the ring (safe, and what
/// `#[must_use]` warns about).
#[must_use = "a received buffer goes back to the ring with BufRing::recycle"]
#[derive(Debug)]
pub struct RecvBuf {
    bid: u16,
    /// A buffer of the epoll driver's own (its scratch buffer, filled by a `recv(2)` it
    /// made), never one of a [`BufRing`]: [`BufRing::data`] refuses it.
    scratch: bool,
    len: u32,
}

impl RecvBuf {
    /// The buffer a recv completion with result `res` and flags `flags` names, or `None`
    /// when it names none (an error, EOF, or a recv without a selected buffer).
    ///
    /// # Safety
    /// `res` and `flags` are those of one completion of a recv that selected from this
    /// worker's [`BufRing`], and no token was made from that completion before: each
    /// buffer the kernel hands over becomes exactly one token.
    pub unsafe fn from_completion(res: i32, flags: u32) -> Option<RecvBuf> {
        let bid = io_uring::cqueue::buffer_select(flags)?;
        Some(RecvBuf {
            bid,
            scratch: false,
            len: res.max(0) as u32,
        })
    }

    /// The epoll driver's scratch buffer, filled with `len` bytes by a `recv(2)` that
    /// has returned (so no kernel write is pending on it). Only that driver makes these.
    pub(super) fn scratch(len: u32) -> RecvBuf {
        RecvBuf {
            bid: 0,
            scratch: true,
            len,
        }
    }

    /// Made by [`RecvBuf::scratch`], not from a completion.
    pub(super) fn is_scratch(&self) -> bool {
        self.scratch
    }

    /// Bytes received into the buffer.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A registered provided-buffer ring and the buffers behind it.
pub struct BufRing {
    /// Base of the entries (page-aligned mmap, `entries * 16` bytes).
    ring: NonNull<BufRingEntry>,
    ring_bytes: usize,
    /// The buffers, `count * size` bytes (mmap, so pages are touched only when used).
    bufs: NonNull<u8>,
    bufs_bytes: usize,
    size: u32,
    /// Buffers handed to the kernel (ids `0..count`).
    count: u16,
    /// Room in the ring and the mapping: the most `count` can grow to.
    max: u16,
    mask: u16,
    /// Our private tail: entries added but not yet published to the kernel.
    tail: u16,
    group: u16,
}

fn mmap_anon(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions;
    // the result is checked for MAP_FAILED before use.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes (count a power of two, at most 32768) and
    /// registers them with `submitter` as buffer group `group`.
    pub fn new(
        submitter: &io_uring::Submitter<'_>,
        group: u16,
        count: u16,
        size: u32,
    ) -> io::Result<BufRing> {
        BufRing::growable(submitter, group, count, count, size)
    }

    /// Like [`BufRing::new`], with `count` buffers published now and room to
    /// [`grow`](BufRing::grow) to `max` (both powers of two, `count <= max <= 32768`).
    pub fn growable(
        submitter: &io_uring::Submitter<'_>,
        group: u16,
        count: u16,
        max: u16,
        size: u32,
    ) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two() && max.is_power_of_two() && count <= max && max <= 32768,
            "buffer count"
        );
        let ring_bytes = max as usize * std::mem::size_of::<BufRingEntry>();
        let bufs_bytes = max as usize * size as usize;
        let ring = mmap_anon(ring_bytes)?.cast::<BufRingEntry>();
        let bufs = match mmap_anon(bufs_bytes) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: `ring` was mapped above with exactly `ring_bytes` and is unused.
                unsafe { libc::munmap(ring.as_ptr().cast(), ring_bytes) };
                return Err(e);
            }
        };
        let mut br = BufRing {
            ring,
            ring_bytes,
            bufs,
            bufs_bytes,
            size,
            count,
            max,
            mask: max - 1,
            tail: 0,
            group,
        };
        // SAFETY: the ring memory is page-aligned (mmap), `max` entries long, zeroed,
        // and lives until `Drop`, which runs after the ring is gone: the worker's `Loop`
        // drops its `IoUring` before its `BufRing` (field order), and the kernel
        // unregisters the group when the ring is closed.
        unsafe {
            submitter.register_buf_ring_with_flags(br.ring.as_ptr() as u64, max, group, 0)?;
        }
        for bid in 0..count {
            br.push_entry(bid);
        }
        br.publish();
        Ok(br)
    }

    /// The buffer group id to name in recv ops.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Buffers handed to the kernel so far.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Hands the kernel as many new buffers again as it has (at most up to `max`), visible
    /// after the next [`publish`](BufRing::publish); false when already at `max`. The
    /// ring never holds more entries than there are buffers, so it cannot overflow.
    pub fn grow(&mut self) -> bool {
        if self.count == self.max {
            return false;
        }
        let old = self.count;
        self.count = (old * 2).min(self.max);
        for bid in old..self.count {
            self.push_entry(bid);
        }
        true
    }

    /// Size of each buffer.
    pub fn buf_size(&self) -> u32 {
        self.size
    }

    /// The bytes the kernel put in `buf`'s buffer. Valid until `buf` is recycled (which
    /// takes the token, so no slice can outlive it: this borrows the ring).
    pub fn data(&mut self, buf: &RecvBuf) -> &mut [u8] {
        assert!(
            !buf.scratch && buf.bid < self.count && buf.len <= self.size,
            "buffer token from another ring"
        );
        let off = buf.bid as usize * self.size as usize;
        // SAFETY: a `RecvBuf` exists only for a buffer the kernel handed us in a completion
        // and that has not been recycled since (its constructor's contract; `recycle` takes
        // it by value and it is neither Copy nor Clone), so the kernel does not write this
        // buffer now; the range lies inside the mapping (checked above); `&mut self` makes
        // this the only live reference into the mapping.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_ptr().add(off), buf.len as usize) }
    }

    /// Gives `buf`'s buffer back to the kernel (visible after the next [`publish`]).
    ///
    /// [`publish`]: BufRing::publish
    pub fn recycle(&mut self, buf: RecvBuf) {
        if buf.scratch {
            // Not one of ours (a token of the epoll driver): the ring must not get
            // buffer `bid` twice.
            debug_assert!(false, "scratch buffer recycled into a buffer ring");
            return;
        }
        debug_assert!(buf.bid < self.count);
        self.push_entry(buf.bid);
    }

    /// Appends buffer `bid` to the ring (ours: a new one from `grow`, or one a
    /// [`RecvBuf`] gave back).
    fn push_entry(&mut self, bid: u16) {
        let idx = (self.tail & self.mask) as usize;
        // SAFETY: `idx <= mask < max`, so the entry lies inside the ring mapping; the kernel only
        // reads entries between its head and the published tail, and this one is past the
        // published tail until `publish`.
        let entry = unsafe { &mut *self.ring.as_ptr().add(idx) };
        // SAFETY: `bid < count <= max` (a buffer the kernel handed us, or a new one from
        // `grow`), so the address lies inside the buffers' mapping.
        let addr = unsafe { self.bufs.as_ptr().add(bid as usize * self.size as usize) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes every recycled buffer to the kernel with one release store of the tail.
    pub fn publish(&mut self) {
        // SAFETY: the ring base is the first entry of a live, initialised ring (see `new`);
        // the tail field is a u16 the kernel reads atomically, so we store it atomically
        // with release ordering after the entries were written.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `new` with these lengths; the io_uring that
        // used them is closed before (see `new`), so nobody refers to them any more.
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes);
            libc::munmap(self.bufs.as_ptr().cast(), self.bufs_bytes);
        }
    }
}
