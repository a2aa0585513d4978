//! The dispatcher: what the plugin API asks of the worker between completions
//! (DESIGN.md section 5). Protocol timers, bus messages in and out, actions queued by
//! callbacks on other connections, `callback_on_writable_all_protocol` (through the
//! core's per-protocol member lists) and the `writeable` callbacks, the wake that
//! delivers posted messages and `event_wait_cancelled`, and each protocol's
//! `init`/`destroy`. It reaches connections only through the connection core.

use std::os::fd::BorrowedFd;

use super::core::Core;
use super::driver::Driver;
use super::log;
use crate::App;
use crate::api::{DynProtocol, Vhost};
use crate::handle::Waker;

/// Calls `f` with every protocol instance and its vhost handle.
pub fn for_each_protocol(app: &mut App, mut f: impl FnMut(&mut dyn DynProtocol, &mut Vhost<'_>)) {
    for (i, p) in app.protocols.list.iter_mut().enumerate() {
        if let Some(p) = p.as_mut() {
            let mut vh = Vhost {
                shared: &mut app.plugin,
                protocol: i as u16,
            };
            f(p.as_mut(), &mut vh);
        }
    }
}

/// The wake eventfd fired: takes the posted messages and calls every protocol's
/// `event_wait_cancelled` (lws' LWS_CALLBACK_EVENT_WAIT_CANCELLED).
pub fn on_wake(app: &mut App, waker: &Waker) {
    while let Ok(msg) = waker.rx.try_recv() {
        app.plugin.posted.push(msg);
    }
    app.wakes += 1;
    for_each_protocol(app, |p, vh| p.event_wait_cancelled(vh));
}

/// The end-of-pass work of the plugin API: protocol timers, bus deliveries, actions
/// queued by callbacks on other connections, `callback_on_writable_all_protocol`,
/// `writeable` callbacks, bus publications. Callbacks may queue more work; bounded
/// rounds.
pub fn plugin_pass<D: Driver>(
    core: &mut Core,
    d: &mut D,
    app: &mut App,
    control: Option<BorrowedFd<'_>>,
) {
    app.plugin.now_ms = core.now_ms;
    app.plugin.now_unix = app.now_unix;
    fire_protocol_timers(app, core.now_ms);
    for bus in std::mem::take(&mut app.bus_in) {
        deliver_bus(app, bus);
    }
    for _round in 0..16 {
        let actions = std::mem::take(&mut app.plugin.actions);
        let all = std::mem::take(&mut app.plugin.writable_all);
        if actions.is_empty() && all.is_empty() && !core.has_writeable() {
            break;
        }
        for (id, a) in actions {
            core.action(d, app, id, a);
        }
        for proto in all {
            core.request_writeable_all(proto);
        }
        core.run_writeables(d, app);
    }
    publish_bus(app, control);
}

fn fire_protocol_timers(app: &mut App, now_ms: u64) {
    while let Some(std::cmp::Reverse((at, proto, id))) = app.plugin.timers.peek().copied() {
        if at > now_ms {
            break;
        }
        app.plugin.timers.pop();
        if let Some(Some(p)) = app.protocols.list.get_mut(proto as usize) {
            let mut vh = Vhost {
                shared: &mut app.plugin,
                protocol: proto,
            };
            p.timer(&mut vh, id);
        }
    }
}

/// Sends this pass's bus publications to the supervisor, which relays them to every
/// worker (this one included). Without a supervisor they loop back here.
fn publish_bus(app: &mut App, control: Option<BorrowedFd<'_>>) {
    let out = std::mem::take(&mut app.plugin.bus_out);
    for (proto, payload) in out {
        let channel = app
            .protocols
            .names
            .get(proto as usize)
            .copied()
            .unwrap_or("")
            .to_string();
        let msg = lwsd_proto::BusMessage {
            channel,
            origin: app.index as u16,
            seq: app.bus_seq,
            payload,
        };
        app.bus_seq += 1;
        match control {
            Some(fd) => {
                let mut buf = Vec::with_capacity(msg.payload.len() + 96);
                if lwsd_proto::FromWorker::Bus(msg).encode(&mut buf).is_ok()
                    && let Err(e) = lwsd_proto::send(fd, &buf, &[])
                {
                    log(2, &format!("bus publish dropped: {e}"));
                }
            }
            None => app.bus_in.push(msg),
        }
    }
}

fn deliver_bus(app: &mut App, msg: lwsd_proto::BusMessage) {
    let Some(i) = app.protocols.index(&msg.channel) else {
        return;
    };
    if let Some(Some(p)) = app.protocols.list.get_mut(i as usize) {
        let mut vh = Vhost {
            shared: &mut app.plugin,
            protocol: i,
        };
        p.bus(&mut vh, msg.origin as usize, &msg.payload);
    }
}
