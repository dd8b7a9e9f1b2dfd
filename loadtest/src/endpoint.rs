//! Where a protocol is served and how it is secured: `starttls://127.0.0.1:2424`,
//! `tls://127.0.0.1:1995` (TLS from the first byte) or `plain://127.0.0.1:110`.

use std::fmt;
use std::str::FromStr;

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// No TLS at all (servers usually refuse logins then).
    Plain,
    /// Plain first, then STARTTLS (LMTP, IMAP) or STLS (POP3).
    StartTls,
    /// TLS from the first byte (POP3S, IMAPS).
    Tls,
}

/// A server address with its security.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    pub security: Security,
    /// `host:port`, as `TcpStream::connect` takes it.
    pub address: String,
}

/// A malformed endpoint.
#[derive(Debug, thiserror::Error)]
#[error("endpoint `{0}`: expected plain://HOST:PORT, starttls://HOST:PORT or tls://HOST:PORT")]
pub struct EndpointError(String);

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || EndpointError(text.to_owned());
        let (scheme, address) = text.split_once("://").ok_or_else(error)?;
        let security = match scheme.to_ascii_lowercase().as_str() {
            "plain" => Security::Plain,
            "starttls" | "stls" => Security::StartTls,
            "tls" | "ssl" => Security::Tls,
            _ => return Err(error()),
        };
        let (host, port) = address.rsplit_once(':').ok_or_else(error)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(error());
        }
        Ok(Self { security, address: address.to_owned() })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.security {
            Security::Plain => "plain",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        };
        write!(formatter, "{scheme}://{}", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_and_refuses_junk() {
        let endpoint: Endpoint = "starttls://127.0.0.1:2424".parse().unwrap();
        assert_eq!(endpoint.security, Security::StartTls);
        assert_eq!(endpoint.address, "127.0.0.1:2424");
        assert_eq!(endpoint.to_string(), "starttls://127.0.0.1:2424");
        assert_eq!("tls://[::1]:993".parse::<Endpoint>().unwrap().security, Security::Tls);
        assert_eq!("plain://localhost:110".parse::<Endpoint>().unwrap().security, Security::Plain);
        for junk in ["127.0.0.1:25", "smtp://a:1", "tls://a", "tls://:1", "tls://a:99999"] {
            assert!(junk.parse::<Endpoint>().is_err(), "{junk}");
        }
    }
}
