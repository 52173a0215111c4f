//! Stream listeners (TCP, and TLS over TCP): one task per connection, cutting the stream into
//! messages with the [`Framer`]. Responses and in-dialog requests go back over the connection.

use super::peer::{Peer, Transport};
use super::{ConnectionsPerAddress, Inbound, Transports};
use crate::sip::framing::{Frame, Framer};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// A slow or silent client gets this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has not sent one complete message by then is closed.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection silent this long (no message, no CRLF keepalive) is closed: longer than any
/// registration refresh or RFC 5626 keepalive interval a phone uses.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Accepts connections; with `tls`, each one is a TLS server session first.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    transports: Arc<Transports>,
    inbound: mpsc::Sender<Inbound>,
) {
    let per_address = ConnectionsPerAddress::new();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = per_address.admit(addr.ip()) else {
            tracing::info!(%addr, "too many connections from this address: refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (transports, inbound) = (transports.clone(), inbound.clone());
        match tls.clone() {
            None => {
                tokio::spawn(async move {
                    connection(stream, addr, Transport::Tcp, transports, inbound).await;
                    drop(slot);
                });
            }
            Some(acceptor) => {
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            connection(tls_stream, addr, Transport::Tls, transports, inbound).await
                        }
                        Ok(Err(e)) => tracing::info!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::info!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// How long a connection that broke framing stays open for the answer to its last request.
const ANSWER_BEFORE_CLOSE: std::time::Duration = std::time::Duration::from_millis(500);

async fn connection<S>(
    stream: S,
    addr: SocketAddr,
    transport: Transport,
    transports: Arc<Transports>,
    inbound: mpsc::Sender<Inbound>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    // The queue's only sender is the one in `transports`: when it is dropped (the peer let
    // the queue fill) the writer ends, and with it the connection.
    let (tx, mut rx) = Transports::outbound_queue();
    let id = transports.register_connection(tx);
    let peer = Peer {
        transport,
        addr,
        connection: Some(id),
    };
    tracing::debug!(%peer, "connection opened");
    let mut writer = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
    });
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut spoken = false;
    'read: loop {
        let limit = if spoken {
            IDLE_TIMEOUT
        } else {
            FIRST_MESSAGE_TIMEOUT
        };
        let n = tokio::select! {
            read = tokio::time::timeout(limit, rd.read(&mut buf)) => match read {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) => {
                    tracing::info!(%peer, silent_s = limit.as_secs(), "closing idle connection");
                    break;
                }
            },
            _ = &mut writer => break,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(data))) => {
                    spoken = true;
                    if inbound
                        .send(Inbound {
                            data,
                            peer,
                            at: std::time::Instant::now(),
                        })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    spoken = true;
                    transports.send(peer, Bytes::from_static(b"\r\n"));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection: bad framing");
                    // The request's header block went up already: give its 400 a moment to
                    // leave before the connection goes.
                    let _ = tokio::time::timeout(ANSWER_BEFORE_CLOSE, &mut writer).await;
                    break 'read;
                }
            }
        }
    }
    transports.close_connection(id);
    writer.abort();
    tracing::debug!(%peer, "connection closed");
}
