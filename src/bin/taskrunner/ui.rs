//! `taskrunner ui`: the dashboard on 127.0.0.1, behind a one-time token. The printed URL
//! carries the token; its first use sets a session cookie and forgets the token, so the URL
//! cannot be used again (from a shell history, say).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use taskrunner::dashboard::{router, Dashboard};
use taskrunner::TaskRunner;

struct Gate {
    token: String,
    session: String,
    used: AtomicBool,
}

/// 128 random bits as hex, from the OS.
fn secret() -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("no randomness for the token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let cookie = format!("taskrunner_session={}", gate.session);
    let has_cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(';').any(|c| c.trim() == cookie));
    if has_cookie {
        return next.run(request).await;
    }
    let offered = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|p| p == format!("token={}", gate.token));
    if offered && !gate.used.swap(true, Ordering::SeqCst) {
        let set = format!("{cookie}; HttpOnly; SameSite=Strict; Path=/");
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, set),
                (header::LOCATION, request.uri().path().to_owned()),
            ],
        )
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        "open the URL `taskrunner ui` printed (its token works once), or start it again\n",
    )
        .into_response()
}

pub(crate) async fn serve(runner: TaskRunner, port: u16) -> Result<(), String> {
    let gate = Arc::new(Gate {
        token: secret()?,
        session: secret()?,
        used: AtomicBool::new(false),
    });
    let user = std::env::var("USER").unwrap_or_else(|_| "ui".into());
    let app = router(
        runner.clone(),
        Dashboard::new().who(move |_| format!("{user} (ui)")),
    )
    .layer(middleware::from_fn_with_state(
        Arc::clone(&gate),
        self::gate,
    ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("http://{address}/?token={}", gate.token);
    eprintln!("serving the dashboard on {address}; Ctrl-C stops it");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    runner.shutdown().await;
    Ok(())
}
