//! The built-in protocols, like libwebsockets-test-server's (DESIGN.md section 5).

pub mod echo;

use crate::api::Plugin;

/// Every protocol compiled into the `lwsd` binary, in the order a client naming none
/// falls back through (the first is the default when `--ws-default` is not given).
pub fn builtin() -> Vec<Plugin> {
    vec![Plugin::new(echo::NAME, |_| Ok(echo::Echo))]
}
