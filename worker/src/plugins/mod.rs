//! The built-in protocols, like libwebsockets-test-server's (DESIGN.md section 5).
//!
//! | protocol | what it does |
//! | --- | --- |
//! | [`echo`] `lws-echo` | every message comes back (the Autobahn target) |
//! | [`dumb_increment`] `dumb-increment-protocol` | a counter per connection, pushed every 50 ms |
//! | [`mirror`] `lws-mirror-protocol` | every message to every client on every worker |
//! | [`server_status`] `lws-server-status` | every worker's figures as JSON, every second |
//! | [`post_demo`] `protocol-post-demo` | the `/formtest` form POST handler ([`form`] parses) |

pub mod dumb_increment;
pub mod echo;
pub mod form;
pub mod mirror;
pub mod post_demo;
pub mod server_status;

use std::collections::BTreeMap;

use crate::api::Plugin;

/// Every protocol compiled into the `lwsd` binary, in the order a client naming none
/// falls back through (the first is the default when `--ws-default` is not given).
pub fn builtin() -> Vec<Plugin> {
    vec![
        Plugin::new(echo::NAME, |_| Ok(echo::Echo)),
        Plugin::new(
            dumb_increment::NAME,
            dumb_increment::DumbIncrement::from_init,
        ),
        Plugin::new(mirror::NAME, mirror::Mirror::from_init),
        Plugin::new(server_status::NAME, server_status::ServerStatus::from_init),
        Plugin::new(post_demo::NAME, post_demo::PostDemo::from_init),
    ]
}

/// Reads the integer pvo `key` from `options`: `default` when absent, an error naming the
/// key when it is not a decimal integer within `min..=max`.
pub(crate) fn option_u64(
    options: &BTreeMap<String, String>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, String> {
    let Some(v) = options.get(key) else {
        return Ok(default);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "option {key}: `{v}` is not an integer from {min} to {max}"
        )),
    }
}

/// Refuses pvos the protocol does not know (a typo would otherwise be silently ignored).
pub(crate) fn known_options(
    options: &BTreeMap<String, String>,
    known: &[&str],
) -> Result<(), String> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown option `{k}` (known: {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn integer_options() {
        assert_eq!(option_u64(&opts(&[]), "n", 7, 1, 10), Ok(7));
        assert_eq!(option_u64(&opts(&[("n", " 3 ")]), "n", 7, 1, 10), Ok(3));
        for bad in ["0", "11", "-1", "x", ""] {
            let e = option_u64(&opts(&[("n", bad)]), "n", 7, 1, 10).unwrap_err();
            assert!(e.contains("option n"), "{e}");
        }
        assert!(known_options(&opts(&[("a", "1")]), &["a", "b"]).is_ok());
        let e = known_options(&opts(&[("c", "1")]), &["a", "b"]).unwrap_err();
        assert!(e.contains("`c`") && e.contains("a, b"), "{e}");
    }

    #[test]
    fn builtin_names_are_unique_and_echo_is_first() {
        let b = builtin();
        let names: Vec<&str> = b.iter().map(|p| p.name).collect();
        assert_eq!(names[0], echo::NAME);
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        let protos = crate::api::Protocols::new(&b, &BTreeMap::new(), None, 0, 2).unwrap();
        assert_eq!(protos.names(), names.as_slice());
    }
}
