//! [`SignedCaller`]: the bare client side of the simulator's signed API. It sends exactly
//! the headers ice-sync's client sends (`ice_wire::signing::rpc_headers`) but nothing
//! else: no rate limit, retries or parsing. For tests of raw answers and of actions the
//! product never calls (`SetEventCallback`), and for the benchmarks' bare floor; the
//! product crate itself has no such raw entry point.

use std::time::Duration;

use chrono::Utc;
use ice_wire::signing::{rpc_headers, rpc_query, RpcRequest};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// The ICE API version the simulator serves.
const API_VERSION: &str = "2020-11-09";
const USER_AGENT: &str = concat!("ice-sim/", env!("CARGO_PKG_VERSION"));

/// Signs and sends RPC calls to one endpoint with one AccessKey.
#[derive(Clone)]
pub struct SignedCaller {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    host: String,
    access_key_id: String,
    access_key_secret: String,
    security_token: Option<String>,
}

impl SignedCaller {
    /// A caller of `endpoint` (e.g. `Simulator::endpoint`) with a long-term AccessKey;
    /// requests time out after 30 s unless [`SignedCaller::timeout`] says otherwise.
    pub fn new(
        endpoint: &str,
        access_key_id: &str,
        access_key_secret: &str,
    ) -> anyhow::Result<SignedCaller> {
        let endpoint = reqwest::Url::parse(endpoint)?;
        let host = endpoint
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint} has no host"))?;
        let host = match endpoint.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(SignedCaller {
            http: http_client(Duration::from_secs(30))?,
            endpoint,
            host,
            access_key_id: access_key_id.to_string(),
            access_key_secret: access_key_secret.to_string(),
            security_token: None,
        })
    }

    /// Temporary credentials: the token goes out (signed) with every request.
    pub fn security_token(mut self, token: Option<&str>) -> SignedCaller {
        self.security_token = token.map(str::to_string);
        self
    }

    /// Each request's time limit, connecting included.
    pub fn timeout(mut self, timeout: Duration) -> anyhow::Result<SignedCaller> {
        self.http = http_client(timeout)?;
        Ok(self)
    }

    /// One signed `action` with `query`, ready to send.
    pub fn request(&self, action: &str, query: &[(String, String)]) -> reqwest::RequestBuilder {
        let nonce = format!("{:032x}", rand::thread_rng().gen::<u128>());
        let pairs = rpc_headers(&RpcRequest {
            host: &self.host,
            action,
            version: API_VERSION,
            user_agent: USER_AGENT,
            query,
            date: &Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            nonce: &nonce,
            access_key_id: &self.access_key_id,
            access_key_secret: &self.access_key_secret,
            security_token: self.security_token.as_deref(),
        });
        let mut headers = HeaderMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            // Names are static ASCII; a value that is no header value (a key with a
            // newline) is left out, and the simulator refuses the signature.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
        let mut url = self.endpoint.clone();
        url.set_path("/");
        url.set_query(Some(&rpc_query(query)));
        self.http.post(url).headers(headers)
    }
}

/// The transport ice-sync's client builds: no redirects (they would carry the signed
/// headers elsewhere), a large idle pool for high concurrency.
fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(256)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}
