//! Serving the router over HTTP/1.1 with the limits `axum::serve` does not set: a client must
//! send a request's headers within [`HEADER_TIMEOUT`] (slow or half-sent requests, and idle
//! keep-alive connections, are closed), and each request carries the peer address
//! (`ConnectInfo`) as with `into_make_service_with_connect_info`. One address holds at most
//! [`crate::transport::MAX_CONNECTIONS_PER_ADDRESS`] connections. WebSocket upgrades (`/sip`)
//! are handed over as before; the timeout ends with the upgrade.

use crate::transport::ConnectionsPerAddress;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::time::Duration;
use tower::ServiceExt;

/// How long a client has to send a request's headers (also: how long an idle keep-alive
/// connection stays open).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on every connection `listener` accepts, until the process ends.
pub async fn serve<L>(mut listener: L, router: Router)
where
    L: Listener<Addr = SocketAddr>,
{
    let per_address = ConnectionsPerAddress::new();
    loop {
        let (io, peer) = listener.accept().await;
        let Some(slot) = per_address.admit(peer.ip()) else {
            tracing::info!(%peer, "too many HTTP connections from this address: refused");
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request.map(Body::new))
                });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
}
