//! `lws-mirror-protocol`: every message any client sends goes to every client of the
//! protocol, on every worker (the shared drawing canvas of lws' test page).
//!
//! ## Path of a message
//! A message is reassembled whole (the WebSocket role bounds its size) and published on
//! the bus ([`Vhost::publish`]): the supervisor relays it to every worker, this one
//! included, in order per publisher. Each worker's [`Protocol::bus`] encodes the frame
//! ONCE ([`SharedFrame`]) and appends it to a per-vhost [`Ring`]; every session keeps its
//! read position in the ring, and `writeable` sends the next frame with
//! [`Conn::write_shared`] (all recipients share the frame's bytes: one allocation per
//! message per worker, whatever the number of clients) and asks again while behind.
//! Messages keep their type: a binary message is relayed as binary (a first byte in the
//! bus payload carries it), so a text frame never carries bytes that are not UTF-8.
//!
//! ## Policies
//! - **Slow clients lose messages; nobody waits for them.** The ring holds at most
//!   `ring-messages` (pvo, default [`DEFAULT_RING_MESSAGES`], big enough for a burst
//!   the bus delivers in one loop pass) messages and `ring-bytes`
//!   (pvo, default [`DEFAULT_RING_BYTES`]) bytes of frames; the oldest go first. A client
//!   that does not read keeps at most one frame in flight on its connection (writes happen
//!   only when the previous send completed); when the ring moves past its position, it
//!   skips to the oldest message still held and the skipped count is added to its
//!   `dropped` figure (logged at close, summed in [`Mirror::dropped_total`]). This is
//!   what lws' mirror does (its ring drops for the laggard), and the alternative —
//!   flow-controlling the senders — would let one stalled reader stall every writer on
//!   every worker. Memory is bounded by the ring, whatever the clients do.
//! - **No history for new clients.** A client starts at the ring's head: it receives the
//!   messages published after it joined, exactly. (lws replays the ring to a newcomer.)
//!   A worker with no mirror clients keeps no ring at all, so a replay would depend on
//!   which worker a client lands on; and load generators that count messages per sender
//!   (lwsd-load) would see old messages as out of sequence.
//! - **Messages over [`MAX_MIRROR_MESSAGE`] are refused** with close 1009 (RFC 6455
//!   7.4.1, "message too big"), as soon as the reassembled size passes it: a bus packet
//!   carries at most [`lwsd_proto::MAX_BUS_PAYLOAD`] bytes, and splitting a message over
//!   several would let a relay drop tear it. lws' test page sends messages under 128
//!   bytes.
//! - A sender that publishes faster than the bus relays loses messages at the bus (the
//!   worker's control socket is non-blocking; the drop is logged there).
//!
//! Hand-written: the ring is the protocol's policy, not a general container.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::api::{
    CbResult, Close, Conn, ConnId, DataKind, FrameInfo, PluginInit, Protocol, SharedFrame, Vhost,
};

/// The protocol name clients ask for.
pub const NAME: &str = "lws-mirror-protocol";

/// Messages kept per worker for readers that are behind. A client takes one message
/// per `writeable` (one per send completion), while the bus hands a worker every
/// publication queued on its control socket in one loop pass: a burst bigger than the
/// ring would make even clients that keep up skip. 4096 absorbs what one control-socket
/// buffer (1 MiB) holds of small drawing commands (~100-250 bytes each), at ~150 bytes of
/// bookkeeping per message; big messages are bounded by [`DEFAULT_RING_BYTES`] first.
/// (lws' mirror uses a few hundred and flow-controls its senders instead.)
pub const DEFAULT_RING_MESSAGES: u64 = 4096;
/// Most messages a ring may be configured for (the index arithmetic is fine beyond, but
/// a bigger ring is memory nobody should pay for).
pub const MAX_RING_MESSAGES: u64 = 1 << 20;
/// Frame bytes kept per worker: 4 MiB holds 256 messages of 16 KiB, or 64 maximum-size
/// ones; it bounds the protocol's memory on the worker.
pub const DEFAULT_RING_BYTES: u64 = 4 << 20;
/// Most frame bytes a ring may be configured for (1 GiB).
pub const MAX_RING_BYTES: u64 = 1 << 30;

/// Largest message relayed: one bus payload less the type byte.
pub const MAX_MIRROR_MESSAGE: usize = lwsd_proto::MAX_BUS_PAYLOAD - 1;

/// Smallest `ring-bytes`: one largest message (plus its frame header) must fit.
const MIN_RING_BYTES: u64 = MAX_MIRROR_MESSAGE as u64 + 14;

/// The close a too-big message gets (RFC 6455 7.4.1).
pub const TOO_BIG: Close = Close::new(1009, "mirror message too big");

/// Bus payload's first byte: the message type.
const KIND_TEXT: u8 = b't';
const KIND_BINARY: u8 = b'b';

/// The pvo options this protocol reads.
const OPTIONS: &[&str] = &["ring-messages", "ring-bytes"];

/// Fragmented messages keep a buffer this large between messages at most; anything
/// bigger is released after its message (idle connections stay small).
const KEEP_PARTIAL_CAPACITY: usize = 4096;

/// The protocol instance of one vhost on one worker.
pub struct Mirror {
    ring: Ring,
    /// Live sessions on this worker.
    sessions: usize,
    /// Messages skipped by slow readers on this worker, all sessions together.
    dropped_total: u64,
    /// Builds single-frame bus payloads without allocating each time.
    scratch: Vec<u8>,
}

/// A connection's state.
#[derive(Debug, Default)]
pub struct MirrorSession {
    /// Ring position of the next message to send.
    next: u64,
    /// Messages this client missed because it read too slowly.
    dropped: u64,
    /// A fragmented message being reassembled: its type byte, then its payload.
    partial: Vec<u8>,
}

impl MirrorSession {
    /// Messages this client missed because it read too slowly.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl Mirror {
    /// Builds the instance from its pvos (`ring-messages`, `ring-bytes`).
    pub fn from_init(init: &PluginInit<'_>) -> Result<Mirror, String> {
        super::known_options(init.options, OPTIONS)?;
        let msgs = super::option_u64(
            init.options,
            "ring-messages",
            DEFAULT_RING_MESSAGES,
            1,
            MAX_RING_MESSAGES,
        )?;
        let bytes = super::option_u64(
            init.options,
            "ring-bytes",
            DEFAULT_RING_BYTES,
            MIN_RING_BYTES,
            MAX_RING_BYTES,
        )?;
        Ok(Mirror::new(msgs as usize, bytes as usize))
    }

    pub fn new(max_messages: usize, max_bytes: usize) -> Mirror {
        Mirror {
            ring: Ring::new(max_messages, max_bytes),
            sessions: 0,
            dropped_total: 0,
            scratch: Vec::new(),
        }
    }

    /// Messages skipped by slow readers on this worker since it started.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    fn publish(vhost: &mut Vhost<'_>, payload: &[u8]) -> CbResult {
        vhost.publish(payload).map_err(|_| TOO_BIG)
    }
}

fn kind_byte(binary: bool) -> u8 {
    if binary { KIND_BINARY } else { KIND_TEXT }
}

impl Protocol for Mirror {
    type Session = MirrorSession;

    fn established(&mut self, _conn: &mut Conn<'_>) -> Result<MirrorSession, Close> {
        self.sessions += 1;
        Ok(MirrorSession {
            next: self.ring.head(),
            ..MirrorSession::default()
        })
    }

    fn receive(
        &mut self,
        conn: &mut Conn<'_>,
        s: &mut MirrorSession,
        data: &[u8],
        f: FrameInfo,
    ) -> CbResult {
        if f.first && f.last && s.partial.is_empty() {
            // The common case: a whole message in one piece.
            if data.len() > MAX_MIRROR_MESSAGE {
                return Err(TOO_BIG);
            }
            self.scratch.clear();
            self.scratch.push(kind_byte(f.binary));
            self.scratch.extend_from_slice(data);
            return Mirror::publish(conn.vhost(), &self.scratch);
        }
        if f.first || s.partial.is_empty() {
            s.partial.clear();
            s.partial.push(kind_byte(f.binary));
        }
        if s.partial.len().saturating_sub(1) + data.len() > MAX_MIRROR_MESSAGE {
            s.partial = Vec::new();
            return Err(TOO_BIG);
        }
        s.partial.extend_from_slice(data);
        if f.last {
            let r = Mirror::publish(conn.vhost(), &s.partial);
            if s.partial.capacity() > KEEP_PARTIAL_CAPACITY {
                s.partial = Vec::new();
            } else {
                s.partial.clear();
            }
            return r;
        }
        Ok(())
    }

    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut MirrorSession) -> CbResult {
        let (frame, lost) = self.ring.read(&mut s.next);
        if lost > 0 {
            s.dropped += lost;
            self.dropped_total += lost;
        }
        if let Some(frame) = frame {
            conn.write_shared(frame).map_err(|_| Close::INTERNAL)?;
            if s.next < self.ring.head() {
                conn.callback_on_writable();
            }
        }
        Ok(())
    }

    fn closed(&mut self, _vhost: &mut Vhost<'_>, _id: ConnId, s: MirrorSession) {
        self.sessions = self.sessions.saturating_sub(1);
        if s.dropped > 0 {
            crate::service::log(
                4,
                &format!(
                    "{NAME}: a slow client closed after missing {} messages",
                    s.dropped
                ),
            );
        }
    }

    fn bus(&mut self, vhost: &mut Vhost<'_>, _origin: usize, payload: &[u8]) {
        if self.sessions == 0 {
            // Nobody here to send it to, and newcomers get no history.
            return;
        }
        let Some((&kind, body)) = payload.split_first() else {
            return;
        };
        let kind = match kind {
            KIND_TEXT => DataKind::Text,
            KIND_BINARY => DataKind::Binary,
            _ => return,
        };
        self.ring
            .push(SharedFrame::new(kind, Bytes::copy_from_slice(body)));
        vhost.callback_on_writable_all_protocol();
    }
}

/// The recent messages of a worker, each encoded once, addressed by an ever-increasing
/// position (the first message ever pushed is 0). Bounded by message count and bytes.
pub struct Ring {
    frames: VecDeque<SharedFrame>,
    /// Position of `frames[0]`.
    first: u64,
    /// Sum of the frames' wire lengths.
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(max_messages: usize, max_bytes: usize) -> Ring {
        Ring {
            frames: VecDeque::new(),
            first: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
        }
    }

    /// Position the next pushed message gets (where a new reader starts).
    pub fn head(&self) -> u64 {
        self.first + self.frames.len() as u64
    }

    /// Position of the oldest message held.
    pub fn oldest(&self) -> u64 {
        self.first
    }

    /// Messages held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends `frame`, dropping the oldest messages while either bound is exceeded (the
    /// newest message always stays).
    pub fn push(&mut self, frame: SharedFrame) {
        self.bytes += frame.wire_len();
        self.frames.push_back(frame);
        while self.frames.len() > self.max_messages
            || (self.bytes > self.max_bytes && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.wire_len();
                self.first += 1;
            }
        }
    }

    /// The message at a reader's position `pos`, advancing `pos` past it. A reader the
    /// ring has moved past first skips to the oldest message held; the second value is
    /// how many it lost.
    pub fn read(&self, pos: &mut u64) -> (Option<&SharedFrame>, u64) {
        let mut lost = 0;
        if *pos < self.first {
            lost = self.first - *pos;
            *pos = self.first;
        }
        let frame = usize::try_from(*pos - self.first)
            .ok()
            .and_then(|i| self.frames.get(i));
        if frame.is_some() {
            *pos += 1;
        }
        (frame, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn frame(s: &str) -> SharedFrame {
        SharedFrame::new(DataKind::Text, Bytes::copy_from_slice(s.as_bytes()))
    }

    fn payload(f: &SharedFrame) -> &[u8] {
        &f.payload
    }

    /// `Ring::read` with the frame's payload copied out (frames have no `PartialEq`).
    fn rd(r: &Ring, pos: &mut u64) -> (Option<Vec<u8>>, u64) {
        let (f, lost) = r.read(pos);
        (f.map(|f| payload(f).to_vec()), lost)
    }

    #[test]
    fn readers_get_every_message_in_order() {
        let mut r = Ring::new(8, 1 << 20);
        let mut a = r.head();
        assert_eq!(rd(&r, &mut a), (None, 0));
        for i in 0..5 {
            r.push(frame(&i.to_string()));
        }
        let mut b = r.head(); // joins now: no history
        r.push(frame("5"));
        let mut got = Vec::new();
        while let (Some(f), 0) = r.read(&mut a) {
            got.push(payload(f).to_vec());
        }
        assert_eq!(
            got,
            ["0", "1", "2", "3", "4", "5"].map(|s| s.as_bytes().to_vec())
        );
        let (f, lost) = r.read(&mut b);
        assert_eq!((payload(f.unwrap()), lost), (&b"5"[..], 0));
        assert_eq!(rd(&r, &mut b), (None, 0));
        assert_eq!(b, r.head());
    }

    #[test]
    fn message_bound_drops_oldest_and_slow_reader_skips() {
        let mut r = Ring::new(4, 1 << 20);
        let mut slow = r.head();
        let mut fast = r.head();
        for i in 0..10u32 {
            r.push(frame(&i.to_string()));
            // The fast reader keeps up.
            let (f, lost) = r.read(&mut fast);
            assert_eq!((payload(f.unwrap()), lost), (i.to_string().as_bytes(), 0));
            assert!(r.len() <= 4);
        }
        assert_eq!((r.oldest(), r.head()), (6, 10));
        // The slow reader lost 0..=5 and resumes at 6, in order.
        let (f, lost) = r.read(&mut slow);
        assert_eq!((payload(f.unwrap()), lost), (&b"6"[..], 6));
        for want in ["7", "8", "9"] {
            let (f, lost) = r.read(&mut slow);
            assert_eq!((payload(f.unwrap()), lost), (want.as_bytes(), 0));
        }
        assert_eq!(rd(&r, &mut slow), (None, 0));
    }

    #[test]
    fn byte_bound_drops_oldest_but_keeps_newest() {
        // Frames of 100 payload bytes are 102 bytes on the wire.
        let big = "x".repeat(100);
        let mut r = Ring::new(1000, 350);
        for _ in 0..10 {
            r.push(frame(&big));
            assert!(r.bytes() <= 350, "{}", r.bytes());
        }
        assert_eq!((r.len(), r.bytes()), (3, 306));
        // A message bigger than the byte bound alone is still kept (it is the newest).
        r.push(frame(&"y".repeat(1000)));
        assert_eq!(r.len(), 1);
        assert_eq!(r.bytes(), 1004);
        assert_eq!(r.oldest(), 10);
    }

    #[test]
    fn options() {
        let mut o = BTreeMap::new();
        let init = |o: &BTreeMap<String, String>| {
            Mirror::from_init(&PluginInit {
                options: o,
                worker: 0,
                workers: 1,
            })
        };
        let m = init(&o).unwrap();
        assert_eq!(m.ring.max_messages, DEFAULT_RING_MESSAGES as usize);
        assert_eq!(m.ring.max_bytes, DEFAULT_RING_BYTES as usize);
        o.insert("ring-messages".into(), "16".into());
        o.insert("ring-bytes".into(), MIN_RING_BYTES.to_string());
        let m = init(&o).unwrap();
        assert_eq!(m.ring.max_messages, 16);
        assert_eq!(m.ring.max_bytes, MIN_RING_BYTES as usize);
        o.insert("ring-bytes".into(), (MIN_RING_BYTES - 1).to_string());
        assert!(init(&o).err().unwrap().contains("ring-bytes"));
        o.insert("ring-bytes".into(), "1048576".into());
        o.insert("ring-messages".into(), "0".into());
        assert!(init(&o).err().unwrap().contains("ring-messages"));
    }

    #[test]
    fn largest_message_fits_one_bus_payload() {
        assert_eq!(MAX_MIRROR_MESSAGE + 1, lwsd_proto::MAX_BUS_PAYLOAD);
    }
}
