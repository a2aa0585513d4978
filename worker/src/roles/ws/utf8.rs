//! Incremental UTF-8 validation of text messages (RFC 6455 sections 5.6 and 8.1).
//!
//! A text message arrives in pieces split anywhere (frame and read boundaries may cut a
//! code point). Section 8.1 requires the endpoint to fail the connection (1007) when the
//! bytes are not valid UTF-8; Autobahn 6.* checks that this happens *as soon as* the
//! bytes seen cannot begin a valid sequence ("fail fast"), not only at the end.
//!
//! The bulk of each piece is checked by `std::str::from_utf8` (the standard library's
//! validator is word-at-a-time and well tested). Its error says whether the bad bytes
//! are definitely invalid (`error_len() == Some(_)`: fail now, even mid-frame) or only
//! an incomplete sequence at the end of the piece (`None`): those at most 3 bytes are
//! carried to the next piece. `from_utf8` rejects a truncated prefix as soon as it can
//! no longer be completed (e.g. `ED A0`, the start of a surrogate), which is exactly the
//! fail-fast rule. Hand-written on top of std: no crate adds anything here.

/// Carries an incomplete code point from one piece to the next.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of a code point cut by a piece boundary; UTF-8 code points are at most 4
    /// bytes long (RFC 3629), so at most 3 bytes are ever pending.
    pending: [u8; 4],
    pending_len: u8,
}

/// The bytes seen so far can not be part of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Length of the sequence a leading byte announces (RFC 3629 section 4); 0 for a byte
/// that can not lead (continuation bytes, C0, C1, F5..FF).
#[inline]
fn seq_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any pending partial code point (start of a new message).
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// True when no code point is cut open at the end of what was fed.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Validate the next piece of the message. Fails as soon as the bytes seen can not be
    /// completed into valid UTF-8.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len != 0 {
            let have = usize::from(self.pending_len);
            // The pending bytes were a valid prefix, so their lead byte has a length.
            let need = seq_len(self.pending[0]).saturating_sub(have);
            let take = need.min(piece.len());
            let mut tmp = self.pending;
            tmp[have..have + take].copy_from_slice(&piece[..take]);
            match std::str::from_utf8(&tmp[..have + take]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {
                    // Still incomplete: the piece was too short to finish it.
                    self.pending = tmp;
                    self.pending_len = (have + take) as u8;
                    return Ok(());
                }
            }
            piece = &piece[take..];
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Error),
            Err(e) => {
                let tail = &piece[e.valid_up_to()..];
                // `error_len() == None` means an incomplete sequence of at most 3 bytes.
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// The message ended: a code point still open is invalid (section 8.1).
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let ok = self.pending_len == 0;
        self.pending_len = 0;
        if ok { Ok(()) } else { Err(Utf8Error) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `msg` split at every boundary into two pieces and then byte by byte; return
    /// the index of the byte after which the validator first failed (None = valid).
    fn fail_point_bytewise(msg: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        for (i, b) in msg.iter().enumerate() {
            if v.feed(std::slice::from_ref(b)).is_err() {
                return Some(i);
            }
        }
        if v.finish().is_err() {
            return Some(msg.len());
        }
        None
    }

    fn valid_whole(msg: &[u8]) -> bool {
        let mut v = Utf8Validator::new();
        v.feed(msg).is_ok() && v.finish().is_ok()
    }

    #[test]
    fn autobahn_6_vectors() {
        // Autobahn 6.2: "Hello-µ@ßöäüàá-UTF-8!!" valid.
        assert!(valid_whole("Hello-µ@ßöäüàá-UTF-8!!".as_bytes()));
        // 6.3/6.4: κόσμε followed by a surrogate ED A0 80: fail at the A0 byte (index 11).
        let v = [
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
        ];
        assert!(!valid_whole(&v));
        assert_eq!(fail_point_bytewise(&v), Some(12));
        // 6.4.2 style: fail in the middle of a 4-byte sequence: F4 90 is > U+10FFFF.
        let v = [
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90,
        ];
        assert_eq!(fail_point_bytewise(&v), Some(12));
        // 6.4.3: valid prefix then F4 80 80 followed by a non-continuation 'e'.
        let v = [0xce, 0xba, 0xf4, 0x80, 0x80, 0x65];
        assert_eq!(fail_point_bytewise(&v), Some(5));
        // Truncated at the end of the message: only `finish` can tell.
        let v = [0xce, 0xba, 0xe1, 0xbd];
        assert_eq!(fail_point_bytewise(&v), Some(4));
        // Overlong encodings (6.9-6.10), C0/C1 and F5..FF leads, lone continuation.
        for bad in [
            &[0xc0, 0xaf][..],
            &[0xe0, 0x80, 0xaf],
            &[0xf0, 0x80, 0x80, 0xaf],
            &[0xc1, 0xbf],
            &[0xf5],
            &[0xff],
            &[0x80],
            &[0xed, 0xbf, 0xbf],
            &[0xf4, 0x90, 0x80, 0x80],
        ] {
            assert!(!valid_whole(bad), "{bad:x?}");
            assert!(fail_point_bytewise(bad).is_some());
        }
        // Boundary code points (6.5-6.7): U+0000, U+007F, U+0080, U+07FF, U+0800,
        // U+FFFF, U+10000, U+10FFFF, U+D7FF, U+E000, U+FFFD are all valid.
        for ok in [
            &[0x00][..],
            &[0x7f],
            &[0xc2, 0x80],
            &[0xdf, 0xbf],
            &[0xe0, 0xa0, 0x80],
            &[0xef, 0xbf, 0xbf],
            &[0xf0, 0x90, 0x80, 0x80],
            &[0xf4, 0x8f, 0xbf, 0xbf],
            &[0xed, 0x9f, 0xbf],
            &[0xee, 0x80, 0x80],
            &[0xef, 0xbf, 0xbd],
        ] {
            assert!(valid_whole(ok), "{ok:x?}");
            assert_eq!(fail_point_bytewise(ok), None);
        }
    }

    /// Splitting a byte string anywhere never changes the verdict, and an invalid string
    /// fails at the same byte no matter how it is split.
    #[test]
    fn every_split_same_verdict() {
        let samples: [&[u8]; 5] = [
            "κόσμε ab 𝄞 ok ÿ".as_bytes(),
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            &[0x61, 0xf0, 0x9d, 0x84, 0x9e, 0x62, 0xf0, 0x9d],
            &[0xf0, 0x9d, 0x84, 0x9e, 0xf0, 0x9d, 0x84, 0x9e],
            &[0xe2, 0x82, 0xac, 0xe2, 0x28, 0xa1],
        ];
        for s in samples {
            let whole = valid_whole(s);
            for a in 0..=s.len() {
                for b in a..=s.len() {
                    let mut v = Utf8Validator::new();
                    let r = v.feed(&s[..a]).and(v.feed(&s[a..b])).and(v.feed(&s[b..]));
                    let r = r.and(v.finish());
                    assert_eq!(r.is_ok(), whole, "{s:x?} split {a} {b}");
                }
            }
        }
    }
}
