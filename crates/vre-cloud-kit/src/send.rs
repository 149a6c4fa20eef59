//! Sending one request with a bearer token, renewing the token once when
//! the API answers 401 (a token revoked or expired early).

use std::future::Future;

use reqwest::header::HeaderMap;

/// An HTTP answer as received: status, headers and the raw body.
#[derive(Debug)]
pub struct RawAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The answer's headers (`Retry-After`, `Location`, ...).
    pub headers: HeaderMap,
    /// The body, unparsed.
    pub body: Vec<u8>,
}

/// Sends the request `build(token)` makes with a token from `token`; on a
/// 401 calls `invalidate` and tries once more with a fresh token. Any other
/// answer is returned as it is (the caller reads error statuses its cloud's
/// way); a request without an answer is `transport(error)`.
pub async fn send_with_bearer<E, B, T, TF, I, IF>(
    build: B,
    token: T,
    invalidate: I,
    transport: impl Fn(reqwest::Error) -> E,
) -> Result<RawAnswer, E>
where
    B: Fn(&str) -> reqwest::RequestBuilder,
    T: Fn() -> TF,
    TF: Future<Output = Result<String, E>>,
    I: Fn() -> IF,
    IF: Future<Output = ()>,
{
    let mut renewed = false;
    loop {
        let bearer = token().await?;
        let resp = build(&bearer).send().await.map_err(&transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(&transport)?.to_vec();
        if status == 401 && !renewed {
            invalidate().await;
            renewed = true;
            continue;
        }
        return Ok(RawAnswer { status, headers, body });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers each connection with the next of `statuses` and records the
    /// Authorization header it got.
    async fn serve(statuses: Vec<u16>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for status in statuses {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap();
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = text
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: "))
                    .unwrap_or("")
                    .to_string();
                log.lock().unwrap().push(auth);
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                sock.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (format!("http://{addr}/"), seen)
    }

    #[tokio::test]
    async fn a_401_renews_the_token_once() {
        let (url, seen) = serve(vec![401, 401]).await;
        let http = reqwest::Client::new();
        let grants = AtomicUsize::new(0);
        let invalidations = AtomicUsize::new(0);
        let answer = send_with_bearer(
            |t| http.get(&url).bearer_auth(t),
            || async { Ok::<_, String>(format!("t{}", grants.fetch_add(1, Ordering::SeqCst) + 1)) },
            || async {
                invalidations.fetch_add(1, Ordering::SeqCst);
            },
            |e| e.to_string(),
        )
        .await
        .unwrap();
        // the second 401 is the caller's to read
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body, b"ok");
        assert_eq!(*seen.lock().unwrap(), ["Bearer t1", "Bearer t2"]);
        assert_eq!(invalidations.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn no_answer_is_a_transport_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let http = reqwest::Client::new();
        let e = send_with_bearer(
            |t| http.get(&url).bearer_auth(t),
            || async { Ok::<_, String>("t".to_string()) },
            || async {},
            |_| "transport".to_string(),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "transport");
    }
}
