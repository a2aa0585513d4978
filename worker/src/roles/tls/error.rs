//! Why a TLS connection failed, who is to blame, the metric label, and the alert sent.

use std::fmt;

use rustls::AlertDescription;

/// Who caused a failure (STYLE.md practice 4: errors say who is to blame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The client: a malformed or hostile handshake, no shared parameters, a bad or
    /// missing client certificate, plain HTTP on the TLS port.
    Peer,
    /// This server: its configuration cannot serve the client, or a crypto operation it
    /// needs failed (no random bytes, ticket sealing).
    Local,
    /// The transport: the handshake timed out, or the connection ended in the middle of
    /// the handshake or of a record.
    Io,
    /// The caller used the session wrongly (sealing before the handshake ended, or after
    /// a failure): a bug in the connection core, not in the peer.
    Misuse,
}

/// A TLS failure. The connection is finished: whatever [`super::TlsSession`] appended to
/// the output (usually a fatal alert) is to be sent, then the socket closed.
#[derive(Clone, Debug)]
pub struct TlsError {
    pub blame: Blame,
    reason: &'static str,
    /// The fatal alert this server sent (RFC 8446 section 6.2), if any. Read back from
    /// the output when the alert left in plain text (before the handshake keys, which is
    /// where hostile handshakes fail); otherwise the alert rustls sends for that error.
    pub alert: Option<AlertDescription>,
    /// rustls' own error, when the failure came from it.
    pub detail: Option<rustls::Error>,
}

impl TlsError {
    pub(crate) fn new(blame: Blame, reason: &'static str) -> TlsError {
        TlsError {
            blame,
            reason,
            alert: None,
            detail: None,
        }
    }

    /// The handshake did not complete within the configured time. The connection core
    /// owns the timer; it builds this error so the metric label is the same.
    pub fn timeout() -> TlsError {
        TlsError::new(Blame::Io, "timeout")
    }

    /// The first bytes were a plain HTTP request: answer with
    /// [`super::PLAIN_HTTP_RESPONSE`] (in plain text), then close.
    pub fn plain_http() -> TlsError {
        TlsError::new(Blame::Peer, "plain_http")
    }

    /// From a rustls error, classified.
    pub(crate) fn from_rustls(e: rustls::Error) -> TlsError {
        use rustls::Error as E;
        use rustls::PeerIncompatible as P;
        let (blame, reason) = match &e {
            E::InvalidMessage(_)
            | E::DecryptError
            | E::PeerSentOversizedRecord
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. } => (Blame::Peer, "bad_record"),
            E::PeerIncompatible(p) => match p {
                P::NoCipherSuitesInCommon
                | P::NoKxGroupsInCommon
                | P::NoSignatureSchemesInCommon
                | P::NoEcPointFormatsInCommon => (Blame::Peer, "no_shared_cipher"),
                P::SupportedVersionsExtensionRequired
                | P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled
                | P::ServerDoesNotSupportTls12Or13 => (Blame::Peer, "protocol_version"),
                _ => (Blame::Peer, "incompatible"),
            },
            E::NoCertificatesPresented => (Blame::Peer, "no_certificate"),
            E::InvalidCertificate(_) => (Blame::Peer, "bad_certificate"),
            E::NoApplicationProtocol => (Blame::Peer, "no_application_protocol"),
            // The client gave up: most often a browser that does not trust the (self-
            // signed) certificate.
            E::AlertReceived(_) => (Blame::Peer, "alert_received"),
            E::PeerMisbehaved(_) => (Blame::Peer, "peer_misbehaved"),
            E::InvalidEncryptedClientHello(_) | E::UnsupportedNameType => (Blame::Peer, "other"),
            E::FailedToGetRandomBytes
            | E::FailedToGetCurrentTime
            | E::EncryptError
            | E::General(_)
            | E::InconsistentKeys(_)
            | E::InvalidCertRevocationList(_)
            | E::BadMaxFragmentSize
            | E::Other(_) => (Blame::Local, "local"),
            _ => (Blame::Peer, "other"),
        };
        TlsError {
            blame,
            reason,
            alert: rustls_alert(&e),
            detail: Some(e),
        }
    }

    /// The metric label (`lwsd_tls_handshake_failures_total{reason}`): one of
    /// `bad_record`, `protocol_version`, `no_shared_cipher`, `incompatible`,
    /// `bad_certificate`, `no_certificate`, `no_application_protocol`,
    /// `alert_received`, `peer_misbehaved`, `plain_http`, `timeout`, `eof`,
    /// `truncated`, `too_large`, `local`, `misuse`, `other`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// The alert rustls sends for `e` (its `send_fatal_alert` call sites, 0.23), used when
/// the alert itself left encrypted and cannot be read back.
fn rustls_alert(e: &rustls::Error) -> Option<AlertDescription> {
    use rustls::Error as E;
    use rustls::PeerIncompatible as P;
    Some(match e {
        E::InvalidMessage(m) => AlertDescription::from(*m),
        E::DecryptError => AlertDescription::BadRecordMac,
        E::PeerSentOversizedRecord => AlertDescription::RecordOverflow,
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            AlertDescription::UnexpectedMessage
        }
        E::PeerIncompatible(
            P::SupportedVersionsExtensionRequired
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::ServerDoesNotSupportTls12Or13,
        ) => AlertDescription::ProtocolVersion,
        E::PeerIncompatible(_) => AlertDescription::HandshakeFailure,
        E::NoCertificatesPresented => AlertDescription::CertificateRequired,
        E::InvalidCertificate(c) => AlertDescription::from(c.clone()),
        E::NoApplicationProtocol => AlertDescription::NoApplicationProtocol,
        E::AlertReceived(_) => return None,
        _ => return None,
    })
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.blame {
            Blame::Peer => "peer",
            Blame::Local => "local",
            Blame::Io => "i/o",
            Blame::Misuse => "misuse",
        };
        write!(f, "TLS {} ({who})", self.reason)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(a) = self.alert {
            write!(f, "; sent alert {a:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsError {}
