//! The connection core: every connection of the worker in a slab, with its phase, its
//! output queue and flush policy, its reassembly buffer, its timer and its place in the
//! writeable queue (DESIGN.md section 3, "the shape of a worker").
//!
//! It turns the driver's normalised events into calls on the connection's [`Role`] (the
//! carrier: HTTP/1.1, WebSocket, ...) and the role's answers ([`Flow`]) into driver ops.
//! It knows no protocol: roles see their connection only through [`Cx`]. Output leaves
//! once per connection per pass ([`Core::flush`]): small multi-chunk output is copied
//! into one buffer ([`COALESCE_MAX`](super::output::COALESCE_MAX)), larger output goes in a writev, at most one
//! send in flight. Timers are a heap ([`Timers`]) with one kernel timeout for the earliest
//! deadline, given as the driver's wait timeout.
//!
//! Members: the core keeps, per protocol, the connections whose role speaks it, so
//! `callback_on_writable_all_protocol` visits those and not the whole slab.

use bytes::{Bytes, BytesMut};
use slab::Slab;

use super::conn::{Conn, OutQueue, Phase, RxBuf, SendPool};
use super::driver::{Driver, Event, Received, RecvBuf, Sock};
use super::timers::Timers;
use super::transport::Tls;
use super::{Cx, Flow, LoopConfig, Role, RoleFactory, WRITE_BATCH_BYTES, WRITEABLE_BATCH, log};
use crate::App;
use crate::api::{ConnAction, ConnId};
use crate::roles::tls::{PLAIN_HTTP_RESPONSE, TlsError};

/// `Conn::queued` of a connection whose timer is not queued yet ([`Core::arm_fresh`]): no
/// deadline is below it, so [`Timers::arm`] queues nothing meanwhile.
const FRESH: u64 = 0;

/// Generations wrap at the token's width.
fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1) & super::driver::token::GEN_MASK
}

/// The connections of one protocol (for `callback_on_writable_all_protocol`). Entries of
/// connections that closed stay until the list is next walked or grows to twice its live
/// count, so closing costs no search.
#[derive(Default)]
struct Members {
    ids: Vec<ConnId>,
    live: usize,
}

/// The connection core of one worker.
pub struct Core {
    conns: Slab<Conn>,
    /// Generation of each slab slot's next occupant: kept across reuse so a late
    /// completion for an old connection in the same slot is recognised.
    generations: Vec<u32>,
    /// Send states lent to connections while they have output (see `conn`).
    pub(super) send_pool: SendPool,
    timers: Timers,
    /// Small multi-chunk output is copied here before sending
    /// ([`COALESCE_MAX`](super::output::COALESCE_MAX)).
    coalesce_buf: BytesMut,
    /// Connections with output to flush this pass.
    dirty: Vec<u32>,
    /// Connections whose recv must be re-armed before the next wait.
    rearm: Vec<u32>,
    /// Connections whose role asked for a `writeable` callback.
    wq: Vec<u32>,
    /// Connections adopted in this pass and in the last one, whose first deadline is not
    /// in the timer heap yet ([`Core::arm_fresh`]).
    fresh: Vec<(u32, u32)>,
    fresh_prev: Vec<(u32, u32)>,
    members: Vec<Members>,
    /// Connections whose role carries several sessions (HTTP/2): asked for every
    /// protocol by [`Core::request_writeable_all`].
    mux: Vec<ConnId>,
    /// Connections whose flush found nothing to send and will get no completion.
    idle_flushes: Vec<u32>,
    factory: RoleFactory,
    /// Loop clock, ms.
    pub(super) now_ms: u64,
    pub(super) draining: bool,
    rx_max: usize,
    linger_ms: u64,
}

impl Core {
    pub fn new(cfg: &LoopConfig, factory: RoleFactory) -> Core {
        Core {
            conns: Slab::with_capacity(1024),
            generations: Vec::new(),
            send_pool: SendPool::default(),
            timers: Timers::default(),
            coalesce_buf: BytesMut::new(),
            dirty: Vec::new(),
            rearm: Vec::new(),
            wq: Vec::new(),
            fresh: Vec::new(),
            fresh_prev: Vec::new(),
            members: Vec::new(),
            mux: Vec::new(),
            idle_flushes: Vec::new(),
            factory,
            now_ms: 0,
            draining: false,
            rx_max: cfg.rx_max,
            linger_ms: cfg.linger.as_millis() as u64,
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Entries in the timer heap and the earliest of them.
    pub fn queued_timers(&self) -> (usize, Option<u64>) {
        (self.timers.len(), self.timers.next())
    }

    /// The earliest connection deadline the loop must wake for.
    pub fn next_deadline(&self) -> Option<u64> {
        [self.timers.next(), self.fresh_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn id(&self, slot: u32) -> ConnId {
        ConnId::conn(slot, self.conns[slot as usize].generation)
    }

    /// Whether `id` names a connection that is still open.
    pub fn live_id(&self, id: ConnId) -> bool {
        matches!(self.conns.get(id.slot as usize), Some(c) if c.generation == id.generation && c.phase == Phase::Open)
    }

    /// Handles one driver event about a connection.
    pub fn on_event<D: Driver>(&mut self, d: &mut D, app: &mut App, ev: Event) {
        let conn = match &ev {
            Event::Recv { conn, .. }
            | Event::Sent { conn, .. }
            | Event::StopDone { conn }
            | Event::ShutdownDone { conn } => *conn,
            Event::Handoff { sock, listener } => {
                if self.draining {
                    d.close(ConnId::default(), *sock);
                } else {
                    self.adopt(d, app, *sock, *listener);
                }
                return;
            }
            Event::Wake | Event::Control { .. } | Event::CloseFailed { .. } => return,
        };
        let live = matches!(self.conns.get(conn.slot as usize), Some(c) if c.generation == conn.generation);
        if !live {
            // A completion for a connection that is gone: only a buffer needs returning.
            if let Event::Recv {
                got: Received::Data(buf),
                ..
            } = ev
            {
                d.recycle(buf);
            }
            return;
        }
        let slot = conn.slot;
        match ev {
            Event::Recv { got, more, .. } => self.on_recv(d, app, slot, got, more),
            Event::Sent { res, .. } => self.on_send(d, app, slot, res),
            Event::StopDone { .. } => self.conns[slot as usize].cancel_inflight = false,
            Event::ShutdownDone { .. } => self.conns[slot as usize].send_inflight = false,
            _ => {}
        }
        self.maybe_finish_close(d, app, slot);
    }

    /// Takes over a connection: registers it and arms its read.
    pub fn adopt<D: Driver>(&mut self, d: &mut D, app: &mut App, sock: Sock, listener: u16) {
        let role = (self.factory)(app, listener);
        let tls = match app.tls.as_ref().map(|t| t.session()) {
            None => None,
            Some(Ok(session)) => Some(Box::new(Tls::new(session))),
            Some(Err(e)) => {
                // No session for this connection (rustls could not start one): refuse it.
                log(1, &format!("TLS session: {e}"));
                app.stats.count_tls_failure(e.reason());
                d.close(ConnId::default(), sock);
                return;
            }
        };
        let entry = self.conns.vacant_entry();
        let slot = entry.key() as u32;
        let generation = self.generations.get(slot as usize).copied().unwrap_or(0);
        entry.insert(Conn {
            sock,
            generation,
            phase: Phase::Open,
            recv_armed: false,
            send_inflight: false,
            cancel_inflight: false,
            dirty: false,
            in_wq: false,
            rx_paused: false,
            peer_eof: false,
            out: OutQueue::default(),
            rx: RxBuf::default(),
            tls,
            deadline: u64::MAX,
            // No timer entry until the end of the next pass ([`Core::arm_fresh`]).
            queued: FRESH,
            role,
        });
        self.fresh.push((slot, generation));
        app.stats.wire.accepted_total += 1;
        self.arm_recv(d, slot);
        // Give the role a chance to set its first deadline (header timeout) and greet.
        self.with_role(d, app, slot, |role, cx| role.on_data(cx, &mut []).1);
        if let Some(t) = &app.tls
            && self
                .conns
                .get(slot as usize)
                .is_some_and(|c| c.tls.is_some())
        {
            // Until the handshake is over the deadline is the handshake's.
            let at = self.now_ms + t.handshake_timeout.as_millis() as u64;
            self.set_deadline(slot, at);
        }
    }

    fn arm_recv<D: Driver>(&mut self, d: &mut D, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.recv_armed || c.phase == Phase::Closing || c.rx_paused {
            return;
        }
        c.recv_armed = true;
        d.recv(ConnId::conn(slot, c.generation), c.sock);
    }

    /// Re-arms the reads that ended last pass and are still wanted.
    pub fn rearm<D: Driver>(&mut self, d: &mut D) {
        for slot in std::mem::take(&mut self.rearm) {
            self.arm_recv(d, slot);
        }
    }

    fn on_recv<D: Driver>(
        &mut self,
        d: &mut D,
        app: &mut App,
        slot: u32,
        got: Received,
        more: bool,
    ) {
        let c = &mut self.conns[slot as usize];
        if !more {
            c.recv_armed = false;
        }
        match got {
            Received::Stopped => {
                // The driver ran out of buffers (re-armed once they are back), or a stop
                // for rx flow control landed: re-arm if reading is wanted again meanwhile.
                if !more && c.phase != Phase::Closing && !c.rx_paused {
                    self.rearm.push(slot);
                }
            }
            Received::Failed(_) => self.abort(d, app, slot),
            Received::Eof => {
                if let Some(tls) = c.tls.as_deref_mut()
                    && let Err(e) = tls.session.eof()
                {
                    // A handshake cut off (a port scan, a health check) or a record cut
                    // short: counted; the role sees the EOF as on a plain connection.
                    app.stats.count_tls_failure(e.reason());
                }
                self.peer_eof(d, app, slot);
            }
            Received::Data(buf) => {
                if c.phase == Phase::Open {
                    self.deliver(d, app, slot, &buf);
                }
                d.recycle(buf);
                // The role may have closed the connection, and with no recv armed any
                // more (the multishot ended with this completion: a full CQ ends it too)
                // nothing kept it.
                let Some(c) = self.conns.get_mut(slot as usize) else {
                    return;
                };
                if !more && !c.recv_armed && c.phase != Phase::Closing && !c.rx_paused {
                    self.rearm.push(slot);
                }
            }
        }
    }

    fn peer_eof<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.peer_eof = true;
        match c.phase {
            Phase::Open => {
                let flow = self.with_role_flow(app, slot, |role, cx| role.on_peer_eof(cx));
                self.apply(d, app, slot, flow);
            }
            // The last output (an error response, a TLS alert) may still be unsent: the
            // FIN came in the pass that produced it (`printf ... | nc -N`). It goes out
            // first; the flush's end closes (no lingering: the peer is done).
            Phase::Flushing { .. } if !c.flushed() => {}
            Phase::Lingering | Phase::Flushing { .. } => self.begin_close(d, app, slot),
            Phase::Closing => {}
        }
    }

    /// Hands received bytes to the role: straight from the driver's buffer when nothing
    /// is pending, else appended to the reassembly buffer.
    fn deliver<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, buf: &RecvBuf) {
        let c = &mut self.conns[slot as usize];
        if c.tls.is_some() {
            return self.deliver_tls(d, app, slot, buf);
        }
        let data = d.data(buf);
        if !c.rx.is_empty() || !c.role.wants_input() {
            c.rx.extend_from_slice(data);
            if c.role.wants_input() {
                self.feed_pending(d, app, slot);
            } else {
                self.check_rx_limit(d, slot);
            }
            return;
        }
        let ((used, flow), deadline) = call_role(
            c,
            slot,
            app,
            &mut self.send_pool,
            (self.now_ms, self.draining),
            |role, cx| role.on_data(cx, data),
        );
        if used < data.len() {
            c.rx.extend_from_slice(&data[used..]);
        }
        self.after_callback(d, app, slot, deadline, flow);
        self.check_rx_limit(d, slot);
    }

    /// Received bytes on a TLS connection: records are processed where they lie in the
    /// driver's buffer, the plaintext goes to the reassembly buffer and from there to the
    /// role, handshake messages and alerts to the connection's wire queue.
    fn deliver_tls<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, buf: &RecvBuf) {
        let c = &mut self.conns[slot as usize];
        let Conn { tls, rx, .. } = c;
        let Some(tls) = tls.as_deref_mut() else {
            return;
        };
        let mut out = Vec::new();
        let r = tls
            .session
            .receive(d.data(buf), |p| rx.extend_from_slice(p), &mut out);
        tls.queue_raw(out);
        let h2 = tls.session.alpn() == Some(b"h2");
        if !tls.wire.is_empty() {
            self.mark_dirty(slot);
        }
        let progress = match r {
            Ok(p) => p,
            Err(e) => return self.tls_failed(d, app, slot, e),
        };
        if progress.handshake_done {
            app.stats.wire.tls_handshakes += 1;
            // The role's own deadline again (keep-alive, header timeout); output it
            // queued during the handshake goes on the flush list with the callback
            // (`settle_out`) and is sealed there.
            let alpn: Option<&'static [u8]> = if h2 { Some(b"h2") } else { None };
            self.with_role(d, app, slot, |role, cx| role.on_handshake(cx, alpn));
        }
        self.feed_pending(d, app, slot);
        if progress.peer_closed {
            self.peer_eof(d, app, slot);
        }
    }

    /// The TLS session failed: send what it queued (an alert; for a plain HTTP request on
    /// the TLS port, a 400 a person can read), then close.
    fn tls_failed<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, e: TlsError) {
        let reason = e.reason();
        app.stats.count_tls_failure(reason);
        if crate::log_enabled(8) {
            log(8, &format!("TLS handshake or record failed: {e}"));
        }
        let c = &mut self.conns[slot as usize];
        let plain_http = reason == "plain_http";
        if let Some(tls) = c.tls.as_deref_mut() {
            tls.done = true;
            if plain_http {
                tls.wire.push(Bytes::from_static(PLAIN_HTTP_RESPONSE));
            }
        }
        if !c.send_inflight {
            c.out.clear();
        }
        c.rx = RxBuf::default();
        self.mark_dirty(slot);
        // Linger after the alert or the 400: the rest of the client's flight (a TLS 1.3
        // client sends its request right after its Finished) may still be on its way,
        // and arriving at a closed socket it would draw a reset that can destroy the
        // alert unread.
        self.apply(d, app, slot, Flow::CloseAfterFlush { linger: true });
    }

    /// Offers the reassembly buffer to the role again (after more bytes came, after it
    /// resumed, or after an upgrade).
    fn feed_pending<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32) {
        loop {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                return;
            };
            if c.rx.is_empty() || c.phase != Phase::Open || !c.role.wants_input() {
                break;
            }
            let mut rx = std::mem::take(&mut c.rx);
            let ((used, flow), deadline) = call_role(
                c,
                slot,
                app,
                &mut self.send_pool,
                (self.now_ms, self.draining),
                |role, cx| role.on_data(cx, &mut rx),
            );
            let upgraded = matches!(flow, Flow::Upgrade(_));
            rx.consume(used);
            // A role that consumed nothing but still wants input needs more bytes.
            let progress = used > 0 || upgraded;
            if !rx.is_empty() {
                c.rx = rx;
            }
            self.after_callback(d, app, slot, deadline, flow);
            if !progress {
                break;
            }
        }
        self.check_rx_limit(d, slot);
    }

    /// Stops reading when too much is pending or the role wants no input (rx flow
    /// control, a response streaming); resumes when that has passed.
    fn check_rx_limit<D: Driver>(&mut self, d: &mut D, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.phase != Phase::Open {
            return;
        }
        let over = c.rx.len() >= self.rx_max || !c.role.wants_input();
        if over && !c.rx_paused {
            c.rx_paused = true;
            if c.recv_armed && !c.cancel_inflight {
                self.stop_recv(d, slot);
            }
        } else if !over && c.rx_paused {
            c.rx_paused = false;
            if !c.recv_armed {
                self.rearm.push(slot);
            }
        }
    }

    fn stop_recv<D: Driver>(&mut self, d: &mut D, slot: u32) {
        let c = &mut self.conns[slot as usize];
        c.cancel_inflight = true;
        d.stop_recv(ConnId::conn(slot, c.generation));
    }

    fn on_send<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, res: i32) {
        let c = &mut self.conns[slot as usize];
        c.send_inflight = false;
        if res < 0 {
            // EPIPE, ECONNRESET, ...: the peer is gone.
            c.out.clear();
            self.abort(d, app, slot);
            return;
        }
        match c.tls.as_deref_mut() {
            Some(tls) => {
                tls.wire.advance(res as usize);
                if tls.wire.is_empty() {
                    // Give the drained queue's storage back: an idle TLS connection
                    // holds no output buffer.
                    tls.wire = OutQueue::default();
                }
            }
            None => c.out.advance(res as usize),
        }
        if !c.out.is_empty() || c.tls.as_ref().is_some_and(|t| !t.wire.is_empty()) {
            self.mark_dirty(slot);
            return;
        }
        self.send_pool.reclaim(&mut c.out);
        let phase = c.phase;
        self.note_writeable(slot);
        match phase {
            Phase::Open => {
                let flow = self.with_role_flow(app, slot, |role, cx| role.on_sent(cx));
                self.apply(d, app, slot, flow);
                // The role may have resumed: feed what waited.
                self.feed_pending(d, app, slot);
                self.check_rx_limit(d, slot);
            }
            Phase::Flushing { linger } => {
                // The role may still be streaming the last response's body.
                let flow = self.with_role_flow(app, slot, |role, cx| role.on_sent(cx));
                if matches!(flow, Flow::Abort) {
                    self.abort(d, app, slot);
                } else if self.conns[slot as usize].flushed() {
                    self.finish_flush(d, app, slot, linger);
                } else {
                    // More body, or the TLS close_notify, still to go.
                    self.mark_dirty(slot);
                }
            }
            _ => {}
        }
    }

    /// Runs a role callback with a fresh [`Cx`] and returns its flow unapplied.
    fn with_role_flow(
        &mut self,
        app: &mut App,
        slot: u32,
        f: impl FnOnce(&mut dyn Role, &mut Cx<'_>) -> Flow,
    ) -> Flow {
        let c = &mut self.conns[slot as usize];
        let (flow, deadline) = call_role(
            c,
            slot,
            app,
            &mut self.send_pool,
            (self.now_ms, self.draining),
            f,
        );
        self.set_deadline(slot, deadline);
        self.settle_out(slot);
        flow
    }

    /// Runs a role callback and applies its flow.
    pub fn with_role<D: Driver>(
        &mut self,
        d: &mut D,
        app: &mut App,
        slot: u32,
        f: impl FnOnce(&mut dyn Role, &mut Cx<'_>) -> Flow,
    ) {
        let flow = self.with_role_flow(app, slot, f);
        self.apply(d, app, slot, flow);
    }

    fn after_callback<D: Driver>(
        &mut self,
        d: &mut D,
        app: &mut App,
        slot: u32,
        deadline: u64,
        flow: Flow,
    ) {
        self.set_deadline(slot, deadline);
        self.settle_out(slot);
        self.apply(d, app, slot, flow);
    }

    /// After a callback: a connection with output goes on the flush list; one without
    /// gives its lent send state back (never while a send is in flight: the kernel reads
    /// its iovecs).
    fn settle_out(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        if !c.out.is_empty() {
            self.mark_dirty(slot);
        } else if !c.send_inflight {
            self.send_pool.reclaim(&mut c.out);
        }
    }

    /// Queues the connection for a `writeable` callback if its role asked for one.
    fn note_writeable(&mut self, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if !c.in_wq && c.phase == Phase::Open && c.role.wants_writeable() {
            c.in_wq = true;
            self.wq.push(slot);
        }
    }

    fn set_deadline(&mut self, slot: u32, deadline: u64) {
        let c = &mut self.conns[slot as usize];
        c.deadline = deadline;
        if deadline != u64::MAX {
            self.timers.arm(slot, c.generation, deadline, &mut c.queued);
        }
    }

    fn apply<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, flow: Flow) {
        self.apply_flow(d, app, slot, flow);
        // Whatever the callback changed: a writeable request, rx flow control.
        self.note_writeable(slot);
        self.check_rx_limit(d, slot);
    }

    fn apply_flow<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, flow: Flow) {
        match flow {
            Flow::Continue => {}
            Flow::Abort => self.abort(d, app, slot),
            Flow::CloseAfterFlush { linger } => {
                let c = &mut self.conns[slot as usize];
                if c.phase != Phase::Open {
                    return;
                }
                c.phase = Phase::Flushing { linger };
                if c.flushed() {
                    self.finish_flush(d, app, slot, linger);
                } else {
                    self.mark_dirty(slot);
                }
            }
            Flow::Upgrade(role) => {
                let id = self.id(slot);
                if let Some(p) = role.protocol() {
                    self.join(p, id);
                }
                if role.is_mux() {
                    self.mux.push(id);
                }
                self.conns[slot as usize].role = role;
                // Let the new role greet / arm its timer, then feed leftover bytes.
                self.with_role(d, app, slot, |role, cx| role.on_data(cx, &mut []).1);
                self.feed_pending(d, app, slot);
            }
        }
    }

    fn join(&mut self, proto: u16, id: ConnId) {
        let p = proto as usize;
        if self.members.len() <= p {
            self.members.resize_with(p + 1, Members::default);
        }
        let m = &mut self.members[p];
        m.ids.push(id);
        m.live += 1;
    }

    fn leave(&mut self, proto: u16) {
        let Some(m) = self.members.get_mut(proto as usize) else {
            return;
        };
        m.live = m.live.saturating_sub(1);
        if m.ids.len() > 2 * m.live + 32 {
            let conns = &self.conns;
            m.ids.retain(|id| {
                matches!(conns.get(id.slot as usize), Some(c) if c.generation == id.generation && c.phase != Phase::Closing)
            });
        }
    }

    fn mark_dirty(&mut self, slot: u32) {
        let c = &mut self.conns[slot as usize];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Submits one send per connection with output and no send in flight.
    pub fn flush<D: Driver>(&mut self, d: &mut D) {
        for slot in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            c.dirty = false;
            if c.send_inflight || c.phase == Phase::Closing {
                continue;
            }
            let id = ConnId::conn(slot, c.generation);
            if let Some(tls) = c.tls.as_deref_mut() {
                // The carrier's plaintext is sealed here, once per pass; the records
                // are what is sent.
                let closing = matches!(c.phase, Phase::Flushing { .. });
                if let Err(e) = tls.seal(&mut c.out, &mut self.coalesce_buf, closing) {
                    // After the peer's close_notify rustls seals nothing more: expected
                    // when a client leaves (GOAWAY and close_notify together), not an error.
                    if !tls.session.peer_closed() {
                        log(1, &format!("TLS seal failed: {e}"));
                    }
                    c.out.clear();
                }
                self.send_pool.reclaim(&mut c.out);
                if tls.wire.is_empty() {
                    if matches!(c.phase, Phase::Flushing { .. }) && tls.done {
                        // Nothing to send and nothing will come (the session is over: the
                        // peer's close_notify came first, or sealing failed): no send
                        // completion will finish the flush, so it is finished after the
                        // pass ([`Core::finish_idle_flushes`]).
                        self.idle_flushes.push(slot);
                    }
                    continue;
                }
                tls.wire.coalesce(&mut self.coalesce_buf);
                c.send_inflight = true;
                // SAFETY: as below, for the connection's record queue: it lives in the
                // boxed `Tls` of the connection, untouched until the completion.
                unsafe { d.send(id, c.sock, &mut tls.wire) };
                continue;
            }
            if c.out.is_empty() {
                continue;
            }
            c.out.coalesce(&mut self.coalesce_buf);
            c.send_inflight = true;
            // SAFETY: the queue stays in the connection, untouched, until the send's
            // completion: `send_inflight` is set, and while it is, the queue is neither
            // cleared (`abort`, `on_send`) nor its state returned to the pool
            // (`settle_out`, `reclaim`), and the connection is not freed
            // (`ops_in_flight`). Its chunks and iovecs live on the heap, so the slab
            // moving the `Conn` itself does not move them.
            unsafe { d.send(id, c.sock, &mut c.out) };
        }
    }

    /// Finishes the flushes that had nothing left to send ([`Core::flush`]).
    pub fn finish_idle_flushes<D: Driver>(&mut self, d: &mut D, app: &mut App) {
        for slot in std::mem::take(&mut self.idle_flushes) {
            if let Some(c) = self.conns.get(slot as usize)
                && let Phase::Flushing { linger } = c.phase
                && c.flushed()
            {
                self.finish_flush(d, app, slot, linger);
            }
        }
    }

    fn finish_flush<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32, linger: bool) {
        let c = &mut self.conns[slot as usize];
        if linger && !c.peer_eof {
            // Our FIN after the response; keep reading (and dropping) until the peer
            // closes or the linger time passes (RFC 9112 9.6).
            let id = ConnId::conn(slot, c.generation);
            if d.shutdown_write(id, c.sock) {
                // Counts as the write-side op in flight until it completes.
                c.send_inflight = true;
            }
            c.phase = Phase::Lingering;
            c.rx = RxBuf::default();
            let at = self.now_ms + self.linger_ms;
            self.set_deadline(slot, at);
            let c = &mut self.conns[slot as usize];
            if !c.recv_armed {
                c.rx_paused = false;
                self.rearm.push(slot);
            }
        } else {
            self.begin_close(d, app, slot);
        }
    }

    /// Closes a connection: cancels its ops, closes the socket once they have completed.
    pub fn abort<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32) {
        if let Some(c) = self.conns.get_mut(slot as usize)
            && !c.send_inflight
        {
            // (With a send in flight the chunks stay until its completion: the kernel
            // may still be reading them. The connection is freed after it.)
            c.out.clear();
            if let Some(tls) = c.tls.as_deref_mut() {
                tls.wire.clear();
            }
            self.send_pool.reclaim(&mut c.out);
        }
        self.begin_close(d, app, slot);
    }

    fn begin_close<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32) {
        let Some(c) = self.conns.get_mut(slot as usize) else {
            return;
        };
        if c.phase == Phase::Closing {
            return;
        }
        c.phase = Phase::Closing;
        if c.recv_armed && !c.cancel_inflight {
            self.stop_recv(d, slot);
        }
        // A send in flight completes on its own (or fails once the peer is gone);
        // cancelling it would tear a response. maybe_finish_close closes after it.
        self.maybe_finish_close(d, app, slot);
    }

    fn maybe_finish_close<D: Driver>(&mut self, d: &mut D, app: &mut App, slot: u32) {
        let Some(c) = self.conns.get(slot as usize) else {
            return;
        };
        if c.phase != Phase::Closing || c.ops_in_flight() {
            return;
        }
        let mut c = self.conns.remove(slot as usize);
        let id = ConnId::conn(slot, c.generation);
        // No op refers to the socket or the send state any more: closing it cannot race
        // the kernel.
        d.close(id, c.sock);
        self.send_pool.reclaim_all(&mut c.out);
        if let Some(p) = c.role.protocol() {
            self.leave(p);
        }
        c.role.on_closed(app, id);
        let g = &mut self.generations;
        if g.len() <= slot as usize {
            g.resize(slot as usize + 1, 0);
        }
        g[slot as usize] = next_generation(c.generation);
        app.stats.wire.closed_total += 1;
    }

    /// Queues the timers of the connections adopted before the last pass began. A new
    /// connection's first deadline (the HTTP header timeout) is usually replaced within
    /// a pass of its arrival (its request is read at once, and a keep-alive or WebSocket
    /// deadline follows); queued at once it would stay in the heap as a stale entry and
    /// cost a pop and a push when it came due (~4.5 µs per WebSocket connection, 10 s
    /// after it arrived, measured with 15,000 of them). Held back one pass, only the
    /// deadline that stands is queued.
    pub fn arm_fresh(&mut self) {
        for (slot, generation) in std::mem::take(&mut self.fresh_prev) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if c.generation != generation || c.queued != FRESH {
                continue;
            }
            c.queued = u64::MAX;
            if c.deadline != u64::MAX {
                self.timers.arm(slot, generation, c.deadline, &mut c.queued);
            }
        }
        std::mem::swap(&mut self.fresh_prev, &mut self.fresh);
    }

    /// The earliest deadline of the connections whose timer [`Core::arm_fresh`] has not
    /// queued yet (the loop must not sleep past it).
    fn fresh_deadline(&self) -> Option<u64> {
        self.fresh
            .iter()
            .chain(&self.fresh_prev)
            .filter_map(|&(slot, generation)| {
                let c = self.conns.get(slot as usize)?;
                (c.generation == generation && c.queued == FRESH && c.deadline != u64::MAX)
                    .then_some(c.deadline)
            })
            .min()
    }

    /// Runs the roles whose deadline passed (closing connections past theirs).
    pub fn fire_timers<D: Driver>(&mut self, d: &mut D, app: &mut App) {
        while let Some((_, slot, generation)) = self.timers.pop_due(self.now_ms) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            if c.generation != generation {
                continue;
            }
            c.queued = u64::MAX;
            if c.deadline > self.now_ms {
                // Moved later since this entry was queued: queue the current one.
                let dl = c.deadline;
                if dl != u64::MAX {
                    self.timers.arm(slot, generation, dl, &mut c.queued);
                }
                continue;
            }
            c.deadline = u64::MAX;
            let handshaking = c.tls.as_ref().is_some_and(|t| t.session.is_handshaking());
            match c.phase {
                Phase::Open if handshaking => {
                    // The handshake did not finish in time (a slowloris of TLS).
                    app.stats.count_tls_failure(TlsError::timeout().reason());
                    self.abort(d, app, slot);
                }
                Phase::Open => self.with_role(d, app, slot, |role, cx| role.on_timer(cx)),
                _ => self.abort(d, app, slot),
            }
        }
    }

    /// Applies an action a callback queued for connection `id`.
    pub fn action<D: Driver>(&mut self, d: &mut D, app: &mut App, id: ConnId, a: ConnAction) {
        if !self.live_id(id) {
            return;
        }
        self.with_role(d, app, id.slot, |role, cx| role.on_action(cx, id.stream, a));
        self.check_rx_limit(d, id.slot);
        if matches!(a, ConnAction::RxFlow(true)) {
            self.feed_pending(d, app, id.slot);
        }
    }

    /// Asks every open connection of protocol `proto` for a `writeable` callback.
    pub fn request_writeable_all(&mut self, proto: u16) {
        if self.members.len() <= proto as usize {
            self.members
                .resize_with(proto as usize + 1, Members::default);
        }
        let m = &mut self.members[proto as usize];
        let mut ids = std::mem::take(&mut m.ids);
        let conns = &mut self.conns;
        let mut queued = Vec::new();
        ids.retain(|id| {
            let Some(c) = conns.get_mut(id.slot as usize) else {
                return false;
            };
            if c.generation != id.generation || c.phase == Phase::Closing {
                return false;
            }
            if c.phase == Phase::Open && c.role.protocol() == Some(proto) {
                c.role.request_writeable();
                queued.push(id.slot);
            }
            true
        });
        self.members[proto as usize].ids = ids;
        // Connections carrying many sessions (HTTP/2) ask theirs.
        let conns = &mut self.conns;
        self.mux.retain(|id| {
            let Some(c) = conns.get_mut(id.slot as usize) else {
                return false;
            };
            if c.generation != id.generation || c.phase == Phase::Closing {
                return false;
            }
            if c.phase == Phase::Open && c.role.request_writeable_protocol(proto) {
                queued.push(id.slot);
            }
            true
        });
        for slot in queued {
            self.note_writeable(slot);
        }
    }

    /// Whether connections are waiting for a `writeable` callback.
    pub fn has_writeable(&self) -> bool {
        !self.wq.is_empty()
    }

    /// Gives the connections in the writeable queue their `writeable` callbacks.
    pub fn run_writeables<D: Driver>(&mut self, d: &mut D, app: &mut App) {
        for slot in std::mem::take(&mut self.wq) {
            let Some(c) = self.conns.get_mut(slot as usize) else {
                continue;
            };
            c.in_wq = false;
            if c.phase != Phase::Open || !c.role.wants_writeable() {
                continue;
            }
            if c.send_inflight || c.out.len() >= WRITE_BATCH_BYTES {
                // Writeable once the send completes (on_send notes it again).
                continue;
            }
            // No send is in flight until the next flush, so a role that asks again
            // right after its write is called again now: a reader catching up on a
            // mirror, or an echo with several answers queued, fills one send instead of
            // waiting a send round trip per message. Each call still allows one write.
            for _ in 0..WRITEABLE_BATCH {
                self.with_role(d, app, slot, |role, cx| role.on_writeable(cx));
                let Some(c) = self.conns.get(slot as usize) else {
                    break;
                };
                if c.phase != Phase::Open
                    || !c.role.wants_writeable()
                    || c.out.len() >= WRITE_BATCH_BYTES
                {
                    break;
                }
            }
            // Input held back until this answer was written can go on now.
            self.feed_pending(d, app, slot);
        }
    }

    /// Starts a graceful drain: every role finishes its current exchange and closes.
    pub fn drain<D: Driver>(&mut self, d: &mut D, app: &mut App) {
        self.draining = true;
        let slots: Vec<u32> = self.conns.iter().map(|(k, _)| k as u32).collect();
        for slot in slots {
            if matches!(self.conns.get(slot as usize), Some(c) if c.phase == Phase::Open) {
                self.with_role(d, app, slot, |role, cx| role.on_drain(cx));
            }
        }
    }
}

/// Runs a role callback on connection `c` (in `slot`) with a fresh [`Cx`]; returns what
/// the callback returned and the deadline the role left. `clock` is (now_ms, draining).
fn call_role<R>(
    c: &mut Conn,
    slot: u32,
    app: &mut App,
    pool: &mut SendPool,
    clock: (u64, bool),
    f: impl FnOnce(&mut dyn Role, &mut Cx<'_>) -> R,
) -> (R, u64) {
    let mut deadline = c.deadline;
    pool.lend(&mut c.out);
    let mut cx = Cx {
        id: ConnId::conn(slot, c.generation),
        out: &mut c.out,
        app,
        now_ms: clock.0,
        deadline: &mut deadline,
        draining: clock.1,
        secure: c.tls.is_some(),
    };
    let r = f(c.role.as_mut(), &mut cx);
    (r, deadline)
}
