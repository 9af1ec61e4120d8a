//! Serving: TLS (rustls, ring) or plain HTTP, HTTP/1.1 with WebSocket upgrades, and graceful
//! shutdown: stop accepting, tell every socket to reconnect, drain, then return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::hub::Hub;

/// Accepts connections until `shutdown` resolves; then, for `notice`, /readyz says `draining`
/// and joins are refused with `shutting_down` (the load balancer stops routing here) while the
/// node still answers; then it stops accepting, tells every socket to reconnect, and drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()>,
    notice: Duration,
) -> anyhow::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    let mut notice_over: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown, if notice_over.is_none() => {
                tracing::info!(seconds = notice.as_secs(), "draining: not ready, refusing joins");
                hub.start_draining();
                notice_over = Some(Box::pin(tokio::time::sleep(notice)));
                continue;
            }
            () = async { if let Some(s) = notice_over.as_mut() { s.await } }, if notice_over.is_some() => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer address rides on each request (login throttling by address).
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            router.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
        });
    }
    tracing::info!("shutting down: no new connections, telling clients to reconnect");
    drop(listener);
    hub.drain().await;
    // Upgraded sockets left hyper's watch at the upgrade: without waiting for them too, the
    // process exited before their goodbye went out (clients saw 1006, not 1001).
    let all_closed = async {
        tokio::join!(graceful.shutdown(), hub.sockets_closed());
    };
    tokio::select! {
        () = all_closed => tracing::info!("all connections closed"),
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; exiting anyway"),
    }
    Ok(())
}
