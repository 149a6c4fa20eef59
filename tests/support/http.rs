//! Blocking HTTP for tests and benches that otherwise run no async code: a
//! reqwest client on a current-thread runtime of its own.

use std::time::Duration;

pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    pub fn new() -> Http {
        Self::with_client(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a plain reqwest client builds"),
        )
    }

    pub fn with_client(client: reqwest::Client) -> Http {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime starts");
        Http { runtime, client }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Runs a future on this helper's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// GET, expecting a 2xx answer.
    pub fn get_text(&self, url: &str) -> Result<String, String> {
        self.block_on(async {
            let r = self
                .client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = r.status();
            let text = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            if status.is_success() {
                Ok(text)
            } else {
                Err(format!("GET {url}: {status}: {text}"))
            }
        })
    }
}
