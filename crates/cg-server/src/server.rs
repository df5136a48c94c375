//! Accepting connections with every wait bounded: at most [`ServeLimits::max_connections`] at
//! once (one more is answered `503` and closed without reading it), request headers within
//! [`ServeLimits::header_read_timeout`] (a silent or slow client is disconnected, and an idle
//! keep-alive connection is closed after the same time), and a whole request within
//! [`ServeLimits::request_timeout`] (`503 overloaded` after it). On shutdown the listener
//! closes, connections finish their request in flight and close, and the wait for them is
//! bounded too.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::error::ApiError;

/// Bounds on connections and their waits.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time for a client to send a request's headers (and the most a keep-alive connection
    /// stays idle).
    pub header_read_timeout: Duration,
    /// Time for a whole request, body and handler included.
    pub request_timeout: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    pub drain_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            max_connections: 1_024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(150),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves until `shutdown` completes, then finishes the requests in flight, with the default
/// [`ServeLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeLimits::default(), shutdown).await
}

/// The whole answer to a connection over the limit (the documented error shape).
fn busy_response() -> Vec<u8> {
    let body = r#"{"error":{"status":503,"code":"overloaded","message":"too many connections; try again shortly"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let request_timeout = limits.request_timeout;
    let app = crate::router(state).layer(axum::middleware::from_fn(
        move |req: Request, next: Next| async move {
            match tokio::time::timeout(request_timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => {
                    ApiError::overloaded("the request took too long; try again").into_response()
                }
            }
        },
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!("connection limit reached: refusing a connection");
                    connections.spawn(async move {
                        let mut stream = stream;
                        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy_response())).await;
                    });
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                let mut closing = closing_rx.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_read_timeout)
                        .keep_alive(true);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    let shutting_down = async move {
                        loop {
                            let closing_now = *closing.borrow_and_update();
                            if closing_now || closing.changed().await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = shutting_down => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "shutdown: connections still open after the drain timeout"
        );
        connections.abort_all();
    }
    Ok(())
}
