//! Join links: `https://HOST[:PORT]/j#TOKEN` -> the WebSocket URL and the token.
//!
//! The token lives in the URL fragment so that it never reaches the server in a request line,
//! an access log or a Referer. This module keeps it that way: the derived WebSocket URL has
//! no fragment and no query, and the token only leaves this process inside the first
//! WebSocket message (`join`).

use url::Url;

use crate::error::PeerError;

/// A join token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The secret itself, for the `join` message only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A parsed join link.
#[derive(Clone, Debug)]
pub struct JoinLink {
    ws_url: Url,
    token: Token,
}

impl JoinLink {
    /// Parses a join link. `https` gives `wss`, `http` gives `ws` (plain-HTTP mode behind a
    /// TLS-terminating proxy, or local tests); the `ws` endpoint is a sibling of the join page
    /// (`/j` -> `/ws`, `/prefix/j` -> `/prefix/ws`).
    pub fn parse(link: &str) -> Result<Self, PeerError> {
        // url::ParseError never echoes its input, so the token cannot leak through it.
        let url = Url::parse(link.trim()).map_err(|e| PeerError::Link(e.to_string()))?;
        let scheme = match url.scheme() {
            "https" => "wss",
            "http" => "ws",
            other => {
                return Err(PeerError::Link(format!(
                    "unsupported scheme {other:?} (want https or http)"
                )));
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(PeerError::Link("the link has no host".into()));
        }
        let token = url
            .fragment()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| PeerError::Link("the link has no token after '#'".into()))?
            .to_owned();
        if url.query().is_some() {
            // A token in a query string would be logged by every proxy on the way.
            return Err(PeerError::Link(
                "a join link has no query string; the token goes after '#'".into(),
            ));
        }
        let mut ws_url = url.join("ws").map_err(|e| PeerError::Link(e.to_string()))?;
        ws_url.set_fragment(None);
        ws_url.set_query(None);
        ws_url
            .set_scheme(scheme)
            .map_err(|()| PeerError::Link("cannot derive the WebSocket URL".into()))?;
        Ok(JoinLink {
            ws_url,
            token: Token(token),
        })
    }

    /// The WebSocket URL (no secret in it; safe to print).
    pub fn ws_url(&self) -> &Url {
        &self.ws_url
    }

    /// True for `wss://` (the link was `https://`).
    pub fn is_tls(&self) -> bool {
        self.ws_url.scheme() == "wss"
    }

    pub(crate) fn token(&self) -> &Token {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_socket_url_without_the_token() {
        let l = JoinLink::parse("https://example.org/j#secret.token").expect("valid");
        assert_eq!(l.ws_url().as_str(), "wss://example.org/ws");
        assert_eq!(l.token().expose(), "secret.token");
        assert!(l.is_tls());
        assert!(!format!("{l:?}").contains("secret"));

        let l = JoinLink::parse("http://127.0.0.1:8080/j#t").expect("valid");
        assert_eq!(l.ws_url().as_str(), "ws://127.0.0.1:8080/ws");
        assert!(!l.is_tls());

        let l = JoinLink::parse("https://h:8443/tele/j#t").expect("valid");
        assert_eq!(l.ws_url().as_str(), "wss://h:8443/tele/ws");
    }

    #[test]
    fn rejects_links_without_a_usable_token() {
        for bad in [
            "https://h/j",
            "https://h/j#",
            "ftp://h/j#t",
            "not a url",
            "https://h/j?token=x#t",
        ] {
            let err = JoinLink::parse(bad).expect_err(bad);
            assert!(matches!(err, PeerError::Link(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("token=x"));
        }
    }
}
