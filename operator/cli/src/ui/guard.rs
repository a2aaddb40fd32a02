//! Who may use `ciclo ui`. It reads the cluster with the user's own credentials, so nothing
//! but the user's browser may reach it:
//!
//! - It listens on 127.0.0.1 only.
//! - A random token is in the URL it prints; the first request with it gets the token as a
//!   cookie (`HttpOnly`, `SameSite=Strict`) and is sent on to the same page without it, so
//!   the token leaves the address bar and the history. Every request needs the cookie or the
//!   token: another local user's process, or another site's page, knows neither.
//! - The `Host` header must name this address (`127.0.0.1:PORT` or `localhost:PORT`): a page
//!   of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends its
//!   own name, and is refused before the token is even looked at.

use axum::http::{HeaderMap, StatusCode, Uri, header};

/// The cookie that carries the token.
pub const COOKIE: &str = "ciclo-ui-token";

/// The token and the port the view was started with.
#[derive(Clone)]
pub struct Guard {
    token: String,
    port: u16,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Allow,
    /// The token came in the URL: set the cookie and send the browser to `location`, the
    /// same address without the token.
    SetCookie { location: String },
    /// Refused, with the status and a line saying why (no page, no data).
    Refuse(StatusCode, &'static str),
}

impl Guard {
    /// A guard with a new random token (256 bits, hex).
    pub fn new(port: u16) -> anyhow::Result<Guard> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("no random numbers for the token: {e}"))?;
        Ok(Guard::with_token(port, hex(&bytes)))
    }

    pub fn with_token(port: u16, token: String) -> Guard {
        Guard { token, port }
    }

    /// The address to open: the token in its query.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// Judges a request by its `Host`, its cookie and its URL's token.
    pub fn judge(&self, uri: &Uri, headers: &HeaderMap) -> Verdict {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let local = [
            format!("127.0.0.1:{}", self.port),
            format!("localhost:{}", self.port),
        ];
        if !host.is_some_and(|h| local.iter().any(|l| l.eq_ignore_ascii_case(h))) {
            return Verdict::Refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "ciclo ui answers only to 127.0.0.1 and localhost on its own port",
            );
        }
        let (query_token, rest) = split_token(uri.query());
        if let Some(given) = query_token {
            if !self.matches(&given) {
                return Verdict::Refuse(StatusCode::FORBIDDEN, TOKEN_REFUSED);
            }
            let location = match rest {
                Some(q) => format!("{}?{q}", uri.path()),
                None => uri.path().to_string(),
            };
            return Verdict::SetCookie { location };
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value);
        match cookie {
            Some(value) if self.matches(value) => Verdict::Allow,
            _ => Verdict::Refuse(StatusCode::FORBIDDEN, TOKEN_REFUSED),
        }
    }

    /// The `Set-Cookie` value for the token.
    pub fn cookie(&self) -> String {
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.token)
    }

    /// In constant time (blake3's hashes compare so): how long a comparison takes tells
    /// nothing of how much of a guess was right.
    fn matches(&self, given: &str) -> bool {
        blake3::hash(given.as_bytes()) == blake3::hash(self.token.as_bytes())
    }
}

const TOKEN_REFUSED: &str =
    "open the address `ciclo ui` printed (with its token); this page needs it";

/// The query's `token` and the query without it.
fn split_token(query: Option<&str>) -> (Option<String>, Option<String>) {
    let Some(query) = query else {
        return (None, None);
    };
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("token", value)) => token = Some(value.to_string()),
            _ => rest.push(pair),
        }
    }
    let rest = (!rest.is_empty()).then(|| rest.join("&"));
    (token, rest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard() -> Guard {
        Guard::with_token(8123, "s3cret".into())
    }

    fn headers(host: &str, cookie: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(c) = cookie {
            h.insert(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn the_printed_address_sets_the_cookie_and_drops_the_token_from_the_url() {
        let g = guard();
        assert_eq!(g.url(), "http://127.0.0.1:8123/?token=s3cret");
        assert_eq!(
            g.judge(&uri("/?token=s3cret"), &headers("127.0.0.1:8123", None)),
            Verdict::SetCookie {
                location: "/".into()
            }
        );
        assert_eq!(
            g.judge(
                &uri("/datasets/ml/iris?a=1&token=s3cret&b=2"),
                &headers("localhost:8123", None)
            ),
            Verdict::SetCookie {
                location: "/datasets/ml/iris?a=1&b=2".into()
            },
            "a shared link keeps its own query"
        );
        assert!(g.cookie().contains("HttpOnly") && g.cookie().contains("SameSite=Strict"));
    }

    #[test]
    fn the_cookie_lets_requests_in_and_anything_else_is_refused() {
        let g = guard();
        let ok = headers("127.0.0.1:8123", Some("other=1; ciclo-ui-token=s3cret"));
        assert_eq!(g.judge(&uri("/"), &ok), Verdict::Allow);
        for (what, h) in [
            ("no cookie", headers("127.0.0.1:8123", None)),
            (
                "a wrong cookie",
                headers("127.0.0.1:8123", Some("ciclo-ui-token=guess")),
            ),
            (
                "a cookie of another name",
                headers("127.0.0.1:8123", Some("token=s3cret")),
            ),
        ] {
            assert!(
                matches!(
                    g.judge(&uri("/"), &h),
                    Verdict::Refuse(StatusCode::FORBIDDEN, _)
                ),
                "{what}"
            );
        }
        assert!(matches!(
            g.judge(&uri("/?token=guess"), &headers("127.0.0.1:8123", None)),
            Verdict::Refuse(StatusCode::FORBIDDEN, _)
        ));
    }

    #[test]
    fn another_host_name_is_refused_even_with_the_token() {
        let g = guard();
        for host in [
            "evil.example:8123",
            "127.0.0.1:9999",
            "127.0.0.1",
            "localhost.evil.example:8123",
        ] {
            assert!(
                matches!(
                    g.judge(
                        &uri("/?token=s3cret"),
                        &headers(host, Some("ciclo-ui-token=s3cret"))
                    ),
                    Verdict::Refuse(StatusCode::MISDIRECTED_REQUEST, _)
                ),
                "{host}"
            );
        }
        assert!(matches!(
            g.judge(&uri("/"), &HeaderMap::new()),
            Verdict::Refuse(StatusCode::MISDIRECTED_REQUEST, _)
        ));
    }

    #[test]
    fn tokens_are_random_and_long() {
        let (a, b) = (Guard::new(1).unwrap(), Guard::new(1).unwrap());
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 64);
    }
}
