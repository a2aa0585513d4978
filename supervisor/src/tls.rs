//! TLS at start (issue 10): the certificate, key and CA files are checked before any
//! worker starts, so an unusable one stops lwsd with a line naming the file (exit 1);
//! with `-s` alone a self-signed certificate is made here, once, and every worker
//! (a respawned one too) is pointed at it, so all of them present the same one.
//!
//! The self-signed pair is written to a fresh private directory (mode 0700, files 0600)
//! under `$TMPDIR`, named to workers in [`ENV_TLS_SELF_SIGNED`] and removed when the
//! supervisor exits; a supervisor killed with SIGKILL leaves it behind (a throwaway key,
//! readable by its user only).

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use lwsd_worker::config::{ListenerKind, TlsIdentity, WorkerConfig};
use lwsd_worker::roles::tls::{SELF_SIGNED_CERT, SELF_SIGNED_KEY, WorkerTls, config};

use crate::log::WARN;

/// Environment variable naming the self-signed pair's directory to workers.
pub const ENV_TLS_SELF_SIGNED: &str = "LWSD_TLS_SELF_SIGNED";

/// The self-signed pair's directory; removed on drop.
pub struct SelfSignedDir(PathBuf);

impl SelfSignedDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SelfSignedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checks `cfg.tls` (loading every file as a worker will) and makes the self-signed
/// pair if one is needed. `Ok(None)`: no TLS, or files given.
pub fn prepare(cfg: &WorkerConfig) -> Result<Option<SelfSignedDir>, String> {
    let Some(t) = &cfg.tls else {
        return Ok(None);
    };
    let dir = match t.identity {
        TlsIdentity::Files { .. } => None,
        TlsIdentity::SelfSigned => {
            let names = listen_names(&cfg.listeners);
            let (cert, key) = config::self_signed(&names).map_err(|e| e.to_string())?;
            let dir = write_pair(&cert, &key)
                .map_err(|e| format!("cannot store the self-signed certificate: {e}"))?;
            log!(
                WARN,
                "TLS: using a self-signed certificate for localhost, 127.0.0.1, ::1{}{} \
                 (clients will not trust it; give -C CERT -K KEY)",
                if names.is_empty() { "" } else { ", " },
                names.join(", ")
            );
            Some(dir)
        }
    };
    WorkerTls::new(t, dir.as_ref().map(SelfSignedDir::path)).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// In a worker: points a self-signed identity at the supervisor's files.
pub fn resolve_for_worker(cfg: &mut WorkerConfig) -> io::Result<()> {
    if let Some(t) = &mut cfg.tls
        && t.identity == TlsIdentity::SelfSigned
    {
        let dir = std::env::var_os(ENV_TLS_SELF_SIGNED)
            .map(PathBuf::from)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("-s without -C/-K, and no {ENV_TLS_SELF_SIGNED} from the supervisor"),
                )
            })?;
        t.identity = TlsIdentity::Files {
            cert: dir.join(SELF_SIGNED_CERT),
            key: dir.join(SELF_SIGNED_KEY),
        };
    }
    Ok(())
}

/// The specific addresses lwsd listens on (not the wildcards), as certificate names.
fn listen_names(listeners: &[ListenerKind]) -> Vec<String> {
    let mut v = Vec::new();
    for l in listeners {
        if let ListenerKind::Tcp(a) = l
            && !a.ip().is_unspecified()
        {
            let s = a.ip().to_string();
            if !v.contains(&s) {
                v.push(s);
            }
        }
    }
    v
}

fn write_pair(cert: &str, key: &str) -> io::Result<SelfSignedDir> {
    let mut tag = [0u8; 8];
    ring_fill(&mut tag)?;
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("lwsd-tls-{}-{hex}", std::process::id()));
    // mkdir fails on anything already there (a symlink included): the name is ours.
    std::fs::DirBuilder::new().mode(0o700).create(&path)?;
    let dir = SelfSignedDir(path);
    for (name, body) in [(SELF_SIGNED_CERT, cert), (SELF_SIGNED_KEY, key)] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.0.join(name))?
            .write_all(body.as_bytes())?;
    }
    Ok(dir)
}

fn ring_fill(buf: &mut [u8]) -> io::Result<()> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| io::Error::other("no random bytes from the system"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwsd_worker::config::TlsSettings;

    #[test]
    fn self_signed_pair_is_private_and_removed() {
        let mut cfg = WorkerConfig {
            listeners: vec![
                ListenerKind::Tcp("0.0.0.0:1".parse().unwrap()),
                ListenerKind::Tcp("127.0.0.2:1".parse().unwrap()),
            ],
            ..WorkerConfig::default()
        };
        cfg.tls = Some(TlsSettings::new(TlsIdentity::SelfSigned));
        let dir = prepare(&cfg).unwrap().expect("a directory");
        let p = dir.path().to_owned();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let key = std::fs::metadata(p.join(SELF_SIGNED_KEY)).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        assert_eq!(listen_names(&cfg.listeners), vec!["127.0.0.2".to_string()]);
        drop(dir);
        assert!(!p.exists());
    }

    #[test]
    fn unusable_files_stop_the_start_naming_the_file() {
        let cfg = WorkerConfig {
            tls: Some(TlsSettings::new(TlsIdentity::Files {
                cert: "/nonexistent/lwsd.pem".into(),
                key: "/nonexistent/lwsd.key".into(),
            })),
            ..WorkerConfig::default()
        };
        let e = prepare(&cfg).err().unwrap();
        assert_eq!(e, "/nonexistent/lwsd.pem: not found");
        assert!(prepare(&WorkerConfig::default()).unwrap().is_none());
    }
}
