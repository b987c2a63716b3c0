//! Ctrl-C and SIGTERM: the one home of how crossrank's processes hear
//! that they should stop (the server's graceful shutdown, the trainer's
//! save-and-stop).

/// Resolves on the next Ctrl-C or SIGTERM (SIGTERM on Unix only).
pub async fn termination() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Resolves on Ctrl-C or SIGTERM, logging that the server is shutting down.
pub async fn shutdown_signal() {
    termination().await;
    tracing::info!("shutting down: no new connections; answering the requests in flight");
}
