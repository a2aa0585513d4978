//! Stateless session tickets shared by every worker (issue 10: "session resumption that
//! works whichever worker the resumed connection lands on").
//!
//! The supervisor makes the keys ([`KeyRotation`]), sends them to every worker in a
//! `ToWorker::TicketKeys` control message after the worker's Hello (a respawned worker
//! too) and again at each rotation; each worker's [`Ticketer`] seals new tickets with the
//! newest key and opens tickets sealed with any key it still holds. No worker keeps a
//! session cache (`ServerConfig::session_storage` is a no-op store, see
//! [`super::config`]): whatever a resumption needs is inside the ticket.
//!
//! Ticket layout (RFC 5077 section 4's recommended shape, with an AEAD):
//!
//! ```text
//! +----------------+-------------+--------------------------------+-----------+
//! | key name (16)  | nonce (12)  | AES-256-GCM(session state)     | tag (16)  |
//! +----------------+-------------+--------------------------------+-----------+
//! ```
//!
//! The key name is the additional authenticated data, so a ticket cannot be moved to
//! another key. Nonces are random: with [`ROTATION_INTERVAL`] of 6 h a key seals far
//! fewer than the 2^32 tickets NIST SP 800-38D allows for random 96-bit nonces (that
//! would be ~200,000 new sessions a second for 6 hours).

use std::sync::RwLock;
use std::time::Duration;

use lwsd_proto::{MAX_TICKET_KEYS, TicketKey};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// How often the supervisor makes a new ticket key. Forward secrecy of resumed sessions
/// only holds once every key that could open their tickets is erased, so keys must not
/// live long; 6 h is rustls' own ticketer's rotation period, and nginx documents a
/// similar daily rotation for its `ssl_session_ticket_key` files.
pub const ROTATION_INTERVAL: Duration = Duration::from_secs(6 * 3600);

/// Keys kept: the newest (sealing) and two older ones (opening only). A ticket sealed
/// just before a rotation stays usable for `(KEYS_KEPT - 1) * ROTATION_INTERVAL`.
pub const KEYS_KEPT: usize = 3;

/// The lifetime clients are told (RFC 8446 section 4.6.1 `ticket_lifetime`): the
/// shortest time any ticket stays openable, 12 h.
pub const TICKET_LIFETIME: Duration =
    Duration::from_secs((KEYS_KEPT as u64 - 1) * ROTATION_INTERVAL.as_secs());

const _: () = assert!(KEYS_KEPT <= MAX_TICKET_KEYS);
// RFC 8446 section 4.6.1: servers MUST NOT use any value greater than 7 days.
const _: () = assert!(TICKET_LIFETIME.as_secs() <= 7 * 86_400);

const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// Bytes a ticket adds to the session state it carries.
pub const TICKET_OVERHEAD: usize = NAME_LEN + NONCE_LEN + TAG_LEN;

/// A fresh random key from the system's random source (getrandom(2)).
pub fn new_key() -> Result<TicketKey, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut k = TicketKey {
        name: [0; NAME_LEN],
        secret: [0; 32],
    };
    rng.fill(&mut k.name)?;
    rng.fill(&mut k.secret)?;
    Ok(k)
}

/// The supervisor's keys: newest first, at most [`KEYS_KEPT`].
#[derive(Debug)]
pub struct KeyRotation {
    keys: Vec<TicketKey>,
}

impl KeyRotation {
    /// One fresh key.
    pub fn new() -> Result<KeyRotation, ring::error::Unspecified> {
        Ok(KeyRotation {
            keys: vec![new_key()?],
        })
    }

    /// Makes a new sealing key; the oldest beyond [`KEYS_KEPT`] is dropped (its tickets
    /// stop opening, and the forward secrecy of their sessions is restored).
    pub fn rotate(&mut self) -> Result<(), ring::error::Unspecified> {
        self.keys.insert(0, new_key()?);
        self.keys.truncate(KEYS_KEPT);
        Ok(())
    }

    /// The keys as the control message carries them, newest first.
    pub fn keys(&self) -> &[TicketKey] {
        &self.keys
    }
}

/// A worker's ticket sealer/opener (`rustls::server::ProducesTickets`), shared through
/// the `Arc<ServerConfig>`. Its keys are replaced at runtime by [`Ticketer::update`]
/// when the supervisor's message arrives. Until the first keys arrive it seals nothing:
/// rustls then sends no ticket and the handshake goes on.
///
/// `ProducesTickets` must be `Send + Sync`; the worker is single-threaded, so the
/// `RwLock` is never contended (one uncontended atomic per ticket).
pub struct Ticketer {
    keys: RwLock<Vec<([u8; NAME_LEN], LessSafeKey)>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.keys.read().map_or(0, |k| k.len());
        f.debug_struct("Ticketer").field("keys", &n).finish()
    }
}

impl Default for Ticketer {
    fn default() -> Self {
        Ticketer::new()
    }
}

impl Ticketer {
    /// A ticketer holding no key yet.
    pub fn new() -> Ticketer {
        Ticketer {
            keys: RwLock::new(Vec::new()),
            rng: SystemRandom::new(),
        }
    }

    /// Replaces the keys (newest first). An empty list stops sealing and opening.
    pub fn update(&self, keys: &[TicketKey]) {
        let new: Vec<_> = keys
            .iter()
            .take(MAX_TICKET_KEYS)
            .map(|k| {
                // AES-256 takes any 32-byte key: `new` only fails on a wrong length.
                let unbound = UnboundKey::new(&AES_256_GCM, &k.secret).expect("32-byte key");
                (k.name, LessSafeKey::new(unbound))
            })
            .collect();
        // A poisoned lock only means a panic elsewhere while holding it; the value is a
        // plain list, replaced whole here, so it is safe to go on.
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = new;
    }

    /// How many keys it holds.
    pub fn key_count(&self) -> usize {
        self.keys.read().map_or(0, |k| k.len())
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME.as_secs() as u32
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.read().ok()?;
        let (name, key) = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(plain.len() + TICKET_OVERHEAD);
        out.extend_from_slice(name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(NAME_LEN + NONCE_LEN);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    /// `cipher` is whatever a client sent: every length is checked before slicing, and
    /// any failure is `None` (rustls then does a full handshake).
    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < TICKET_OVERHEAD {
            return None;
        }
        let (name, rest) = cipher.split_first_chunk::<NAME_LEN>()?;
        let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>()?;
        let keys = self.keys.read().ok()?;
        let (_, key) = keys.iter().find(|(n, _)| n == name)?;
        let mut body = sealed.to_vec();
        let plain_len = key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(name),
                &mut body,
            )
            .ok()?
            .len();
        body.truncate(plain_len);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn seals_with_newest_opens_with_any_kept() {
        let mut rot = KeyRotation::new().unwrap();
        let a = Ticketer::new();
        assert_eq!(a.encrypt(b"state"), None, "no keys: no ticket");
        a.update(rot.keys());
        let t0 = a.encrypt(b"state").unwrap();
        assert_eq!(t0.len(), 5 + TICKET_OVERHEAD);
        assert_eq!(t0[..16], rot.keys()[0].name);
        // Another worker with the same keys opens it.
        let b = Ticketer::new();
        b.update(rot.keys());
        assert_eq!(b.decrypt(&t0).as_deref(), Some(&b"state"[..]));
        // Two nonces never repeat in practice: the same state seals differently.
        assert_ne!(a.encrypt(b"state").unwrap(), t0);
        for _ in 1..KEYS_KEPT {
            rot.rotate().unwrap();
            b.update(rot.keys());
            assert_eq!(b.decrypt(&t0).as_deref(), Some(&b"state"[..]));
            assert_ne!(b.encrypt(b"x").unwrap()[..16], t0[..16]);
        }
        assert_eq!(rot.keys().len(), KEYS_KEPT);
        rot.rotate().unwrap();
        b.update(rot.keys());
        assert_eq!(rot.keys().len(), KEYS_KEPT);
        assert_eq!(b.decrypt(&t0), None, "its key rotated out");
    }

    #[test]
    fn tampered_or_short_tickets_do_not_open() {
        let rot = KeyRotation::new().unwrap();
        let t = Ticketer::new();
        t.update(rot.keys());
        let good = t.encrypt(b"session state").unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            assert_eq!(t.decrypt(&bad), None, "flipped byte {i}");
        }
        for n in 0..good.len() {
            assert_eq!(t.decrypt(&good[..n]), None, "cut to {n}");
        }
        assert_eq!(t.decrypt(&[]), None);
        t.update(&[]);
        assert_eq!(t.decrypt(&good), None);
        assert_eq!(t.key_count(), 0);
    }

    #[test]
    fn lifetime_is_what_the_kept_keys_guarantee() {
        assert_eq!(Ticketer::new().lifetime(), 12 * 3600);
    }
}
