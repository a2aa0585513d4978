//! `dumb-increment-protocol`: libwebsockets-test-server's counter.
//!
//! Each connection has a number, starting at 0. A per-vhost timer (lws'
//! `lws_timed_callback_vh_protocol`, here [`Vhost::set_timer`]) fires every `interval-ms`
//! (pvo, default [`DEFAULT_INTERVAL_MS`]) and calls `callback_on_writable_all_protocol`;
//! each connection's `writeable` sends its number as decimal text and increments it. A
//! client that does not read is not buffered for: `writeable` only comes when its
//! previous send completed, so it simply gets fewer (later) numbers.
//!
//! The message `reset\n` (as test.js and lws' test page send it), or `reset`, sets the
//! number back to 0. Anything else is ignored, as lws does. Only the first
//! [`COMMAND_MAX`] bytes of a message are kept to recognise it, so a message of any size
//! costs no buffering.
//!
//! The timer runs only while this worker has connections of the protocol: it is armed by
//! the first `established` and lapses at the first tick that finds none (an idle server
//! does not wake 20 times a second for nobody).
//!
//! No permessage-deflate ([`Protocol::permessage_deflate`]): lws' test server gives this
//! protocol a 10-byte receive buffer, which keeps deflate off it, and lws clients (whose
//! buffer for it is 20 bytes) offer deflate but carry on without it when a server
//! accepts, so a compressed counter would be refused by them (`tests/lws_interop.rs`).
//! A 1..20-byte number gains nothing from compression anyway.

use std::time::Duration;

use bytes::Bytes;

use crate::api::{
    CbResult, Close, Conn, ConnId, FrameInfo, PluginInit, Protocol, Vhost, WriteKind,
};

/// The protocol name clients ask for.
pub const NAME: &str = "dumb-increment-protocol";

/// lws' test server sends the counter every 50 ms.
pub const DEFAULT_INTERVAL_MS: u64 = 50;
/// Fastest allowed tick: 1 ms already means 1000 messages a second per client.
pub const MIN_INTERVAL_MS: u64 = 1;
/// Slowest allowed tick, one hour: anything longer is a configuration mistake.
pub const MAX_INTERVAL_MS: u64 = 3_600_000;

/// Longest command recognised: `reset\n`.
pub const COMMAND_MAX: usize = 6;

/// The pvo options this protocol reads.
const OPTIONS: &[&str] = &["interval-ms"];

/// The protocol instance of one vhost on one worker.
#[derive(Debug)]
pub struct DumbIncrement {
    interval: Duration,
    /// Live sessions on this worker.
    sessions: usize,
    /// The tick timer is set.
    armed: bool,
}

/// A connection's state.
#[derive(Debug, Default)]
pub struct DumbSession {
    number: u64,
    cmd: CommandBuf,
}

impl DumbIncrement {
    /// Builds the instance from its pvos (`interval-ms`).
    pub fn from_init(init: &PluginInit<'_>) -> Result<DumbIncrement, String> {
        super::known_options(init.options, OPTIONS)?;
        let ms = super::option_u64(
            init.options,
            "interval-ms",
            DEFAULT_INTERVAL_MS,
            MIN_INTERVAL_MS,
            MAX_INTERVAL_MS,
        )?;
        Ok(DumbIncrement::new(Duration::from_millis(ms)))
    }

    pub fn new(interval: Duration) -> DumbIncrement {
        DumbIncrement {
            interval,
            sessions: 0,
            armed: false,
        }
    }
}

impl Protocol for DumbIncrement {
    type Session = DumbSession;

    fn permessage_deflate(&self) -> bool {
        false
    }

    fn established(&mut self, conn: &mut Conn<'_>) -> Result<DumbSession, Close> {
        self.sessions += 1;
        if !self.armed {
            self.armed = true;
            conn.vhost().set_timer(self.interval, 0);
        }
        Ok(DumbSession::default())
    }

    fn receive(
        &mut self,
        _conn: &mut Conn<'_>,
        s: &mut DumbSession,
        data: &[u8],
        f: FrameInfo,
    ) -> CbResult {
        s.cmd.push(data);
        if f.last && s.cmd.finish() == Some(Command::Reset) {
            s.number = 0;
        }
        Ok(())
    }

    fn writeable(&mut self, conn: &mut Conn<'_>, s: &mut DumbSession) -> CbResult {
        let mut buf = itoa::Buffer::new();
        let text = buf.format(s.number).as_bytes();
        conn.write(WriteKind::Text, true, Bytes::copy_from_slice(text))
            .map_err(|_| Close::INTERNAL)?;
        s.number = s.number.wrapping_add(1);
        Ok(())
    }

    fn closed(&mut self, _vhost: &mut Vhost<'_>, _id: ConnId, _session: DumbSession) {
        self.sessions = self.sessions.saturating_sub(1);
    }

    fn timer(&mut self, vhost: &mut Vhost<'_>, _id: u64) {
        if self.sessions == 0 {
            self.armed = false;
            return;
        }
        vhost.callback_on_writable_all_protocol();
        vhost.set_timer(self.interval, 0);
    }
}

/// A command the protocol understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Reset,
}

/// The start of a message, kept (at most [`COMMAND_MAX`] bytes) to recognise a command.
#[derive(Debug, Default)]
pub struct CommandBuf {
    buf: [u8; COMMAND_MAX],
    len: u8,
    /// The message is longer than any command.
    long: bool,
}

impl CommandBuf {
    /// Adds a piece of the current message.
    pub fn push(&mut self, data: &[u8]) {
        let have = usize::from(self.len);
        if self.long || have + data.len() > COMMAND_MAX {
            self.long = true;
            return;
        }
        if let Some(dst) = self.buf.get_mut(have..have + data.len()) {
            dst.copy_from_slice(data);
            self.len += data.len() as u8;
        }
    }

    /// The message ended: the command it was, if any. Starts over for the next message.
    pub fn finish(&mut self) -> Option<Command> {
        let cmd = if self.long {
            None
        } else {
            parse_command(self.buf.get(..usize::from(self.len)).unwrap_or(&[]))
        };
        *self = CommandBuf::default();
        cmd
    }
}

/// `reset\n` or `reset` (exactly: lws compares the whole message).
pub fn parse_command(msg: &[u8]) -> Option<Command> {
    match msg {
        b"reset\n" | b"reset" => Some(Command::Reset),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn feed(c: &mut CommandBuf, pieces: &[&[u8]]) -> Option<Command> {
        for p in pieces {
            c.push(p);
        }
        c.finish()
    }

    #[test]
    fn reset_is_recognised_whole_or_in_pieces() {
        let mut c = CommandBuf::default();
        assert_eq!(feed(&mut c, &[b"reset\n"]), Some(Command::Reset));
        assert_eq!(feed(&mut c, &[b"reset"]), Some(Command::Reset));
        assert_eq!(
            feed(&mut c, &[b"re", b"", b"set", b"\n"]),
            Some(Command::Reset)
        );
        // Every split point of "reset\n".
        for i in 0..=6 {
            let (a, b) = b"reset\n".split_at(i);
            assert_eq!(feed(&mut c, &[a, b]), Some(Command::Reset), "split at {i}");
        }
    }

    #[test]
    fn near_misses_are_ignored() {
        let mut c = CommandBuf::default();
        for m in [
            &b"reset\n\n"[..],
            b"reset \n",
            b"Reset\n",
            b"rese",
            b"",
            b"\n",
            b"reset\r\n",
            b"xreset",
        ] {
            assert_eq!(feed(&mut c, &[m]), None, "{m:?}");
        }
        // A long message whose start is "reset\n" is not a reset, and the state after it
        // is clean for the next message.
        assert_eq!(feed(&mut c, &[b"reset\n", b"more"]), None);
        assert_eq!(feed(&mut c, &[&[b'x'; 1000][..]]), None);
        assert_eq!(feed(&mut c, &[b"reset"]), Some(Command::Reset));
    }

    #[test]
    fn command_buffer_limit() {
        // Exactly COMMAND_MAX bytes are kept; one more marks the message as long.
        let mut c = CommandBuf::default();
        c.push(&[b'a'; COMMAND_MAX]);
        assert!(!c.long);
        c.push(b"b");
        assert!(c.long);
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn interval_option() {
        let mut o = BTreeMap::new();
        let init = |o: &BTreeMap<String, String>| {
            DumbIncrement::from_init(&PluginInit {
                options: o,
                worker: 0,
                workers: 1,
            })
        };
        assert_eq!(init(&o).unwrap().interval, Duration::from_millis(50));
        o.insert("interval-ms".into(), "250".into());
        assert_eq!(init(&o).unwrap().interval, Duration::from_millis(250));
        o.insert("interval-ms".into(), "0".into());
        assert!(init(&o).is_err());
        o.insert("interval-ms".into(), (MAX_INTERVAL_MS + 1).to_string());
        assert!(init(&o).is_err());
        o.clear();
        o.insert("interval".into(), "5".into());
        assert!(init(&o).unwrap_err().contains("unknown option"));
    }

    /// The protocol table answers the handshake's question: deflate off here, on for the
    /// others (the mirror needs it for lws' test client, `tests/lws_interop.rs`).
    #[test]
    fn no_permessage_deflate() {
        let b = crate::plugins::builtin();
        let p = crate::api::Protocols::new(&b, &BTreeMap::new(), None, 0, 1).unwrap();
        let i = |n| p.index(n).unwrap();
        assert!(!p.permessage_deflate(i(NAME)));
        assert!(p.permessage_deflate(i(crate::plugins::mirror::NAME)));
        assert!(p.permessage_deflate(i(crate::plugins::echo::NAME)));
    }
}
