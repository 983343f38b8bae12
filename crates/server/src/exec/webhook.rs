//! Notifications by webhook: JSON POSTs to `exec.webhook_url`, over HTTP or HTTPS.
//!
//! One client is built at start and shared (connection reuse, one TLS set-up per peer). HTTPS
//! servers are verified against the host's trust store (`/etc/ssl/certs`) plus, when
//! `exec.webhook_ca_file` is set, the site's own CA — the usual case inside a securities firm,
//! whose internal services carry certificates of an internal CA. A bad URL or CA file stops the
//! server at start with the file and the reason, rather than losing every notification later.

use std::time::Duration;

use anyhow::Context as _;

use super::ExecConfig;

/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Where notifications go and the client that sends them.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    /// The webhook of `config`, or `None` when no `webhook_url` is set.
    ///
    /// # Errors
    /// The URL is not an `http://` or `https://` URL; the CA file cannot be read or holds no
    /// PEM certificate; the HTTP client cannot be built.
    pub fn from_config(config: &ExecConfig) -> anyhow::Result<Option<Webhook>> {
        let Some(url) = config.webhook_url.clone() else {
            if let Some(ca) = &config.webhook_ca_file {
                tracing::warn!(
                    "exec.webhook_ca_file {} is set but exec.webhook_url is not",
                    ca.display()
                );
            }
            return Ok(None);
        };
        let parsed = reqwest::Url::parse(&url)
            .with_context(|| format!("exec.webhook_url {url:?}: not a URL / 不是有效的 URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            anyhow::bail!(
                "exec.webhook_url {url:?}: must start with http:// or https:// / 须以 http:// 或 https:// 开头"
            );
        }
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT);
        if let Some(path) = &config.webhook_ca_file {
            let pem = std::fs::read(path).with_context(|| {
                format!(
                    "exec.webhook_ca_file {}: cannot read / 无法读取",
                    path.display()
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!(
                    "exec.webhook_ca_file {}: not PEM / 不是 PEM 格式",
                    path.display()
                )
            })?;
            if certs.is_empty() {
                anyhow::bail!(
                    "exec.webhook_ca_file {}: no certificate found / 未找到证书",
                    path.display()
                );
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .context("building the webhook HTTP client / 无法创建 webhook HTTP 客户端")?;
        Ok(Some(Webhook { url, client }))
    }

    /// POSTs `body`; failures (refused, TLS, timeout, non-2xx) are logged, never returned:
    /// a notification must not block or fail the run it is about.
    pub async fn post(&self, body: &serde_json::Value) {
        match self.client.post(&self.url).json(body).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!("webhook {}: HTTP {}", self.url, r.status()),
            Err(e) => {
                // The causes matter here (refused, certificate unknown, …): print the chain.
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    why.push_str(": ");
                    why.push_str(&s.to_string());
                    source = s.source();
                }
                tracing::warn!("webhook {}: {why}", self.url);
            }
        }
    }
}
