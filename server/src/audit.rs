//! Writing the audit log from the web layer: who did what, from which
//! address. A failure to write is logged and never fails the request.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::Extension;
use wick_core::db::team::{self, AuditAction, AuditEvent};
use wick_core::UserId;

use crate::ServerState;

/// The peer's address, as the listener put it on the request.
pub type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

pub fn address(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(a))| a.ip())
}

/// Records `action` by `actor` on `target`. `detail` is written by Wick
/// from fixed words, ids and numbers: never message text.
pub async fn record(
    state: &ServerState,
    actor: Option<UserId>,
    action: AuditAction,
    target: Option<String>,
    detail: Option<String>,
    address: Option<IpAddr>,
) {
    let event = AuditEvent {
        actor,
        action,
        target,
        detail,
        address: address.map(|a| a.to_string()),
    };
    if let Err(e) = team::audit(state.chat().pool(), event).await {
        tracing::error!(error = %e, action = action.as_str(), "could not write the audit log");
    }
}
