//! HTTP and HTTPS for the sinks that reach production services (webhooks and
//! Sentry): the checks on the URLs they post to, the TLS settings a caller
//! can give, and the ureq agent built from both.

use std::fmt;
use std::net::IpAddr;
#[cfg(any(feature = "rustls", feature = "native-tls"))]
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// The `User-Agent` of the webhook sink's requests.
#[cfg(feature = "webhook")]
pub(crate) const USER_AGENT: &str = concat!("zt-monitoring/", env!("CARGO_PKG_VERSION"));

/// Whether this build speaks TLS: the `rustls` or the `native-tls` feature.
pub(crate) const TLS: bool = cfg!(any(feature = "rustls", feature = "native-tls"));

/// How a sink verifies the server it posts to over HTTPS.
///
/// The default trusts Mozilla's root certificates, bundled in the binary
/// (webpki-roots), so a service such as Slack, PagerDuty or sentry.io is
/// verified the same way on every host, whatever its certificate store. With
/// the default `rustls` feature the TLS library is rustls (with ring); with
/// only the `native-tls` feature it is the system's (OpenSSL on Linux).
///
/// - [`TlsConfig::root_certificates_pem`] trusts only the given certificate
///   authorities, for a self-hosted endpoint behind a private CA, a
///   TLS-inspecting proxy, or to pin an endpoint's CA.
/// - `TlsConfig::platform_roots` (features `platform-verifier` or
///   `native-tls`) trusts the operating system's certificate store instead.
/// - `TlsConfig::native_tls` (feature `native-tls`) uses the system's TLS
///   library even when rustls is compiled in.
///
/// Certificate verification cannot be turned off.
///
/// ```no_run
/// # #[cfg(all(feature = "webhook", feature = "rustls"))] {
/// use zt_monitoring::{TlsConfig, WebhookSink};
///
/// let pem = std::fs::read("/etc/ssl/private-ca.pem")?;
/// let tls = TlsConfig::new().root_certificates_pem(pem)?;
/// let sink = WebhookSink::new("https://alerts.internal.example/hook")?.tls(tls);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct TlsConfig {
    roots: Roots,
    #[cfg(feature = "native-tls")]
    native_tls: bool,
}

#[derive(Clone, Default)]
enum Roots {
    /// Mozilla's, bundled.
    #[default]
    Bundled,
    /// The operating system's.
    #[cfg(any(feature = "platform-verifier", feature = "native-tls"))]
    Platform,
    /// Only these certificate authorities.
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    Only(Arc<Vec<ureq::tls::Certificate<'static>>>),
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roots = match &self.roots {
            Roots::Bundled => "bundled".to_owned(),
            #[cfg(any(feature = "platform-verifier", feature = "native-tls"))]
            Roots::Platform => "platform".to_owned(),
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            Roots::Only(certificates) => format!("{} certificate(s)", certificates.len()),
        };
        f.debug_struct("TlsConfig")
            .field("provider", &self.provider_name())
            .field("roots", &roots)
            .finish()
    }
}

impl TlsConfig {
    /// Mozilla's root certificates, with the default TLS library.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the certificate authorities in `pem` (one or more
    /// `CERTIFICATE` blocks; other blocks are skipped), instead of the bundled
    /// or the platform's roots. Calling it again adds more. Each sink talks to
    /// one endpoint, so this is the way to reach a server behind a private CA
    /// or a TLS-inspecting proxy, or to pin the CA of a public one.
    ///
    /// Fails if `pem` is malformed or holds no certificate. The certificates
    /// themselves are checked by the TLS library at the first connection; one
    /// it cannot use fails every delivery, each counted as failed.
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "rustls", feature = "native-tls"))))]
    pub fn root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let mut found = Vec::new();
        for item in ureq::tls::parse_pem(pem.as_ref()) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(certificate)) => found.push(certificate),
                Ok(_) => {}
                Err(error) => return Err(Error::config("root certificate pem is malformed").with_source(error)),
            }
        }
        if found.is_empty() {
            return Err(Error::config("root certificate pem holds no certificate"));
        }
        match &mut self.roots {
            Roots::Only(certificates) => Arc::make_mut(certificates).extend(found),
            roots => *roots = Roots::Only(Arc::new(found)),
        }
        Ok(self)
    }

    /// Trusts the operating system's certificate store instead of the bundled
    /// roots, replacing any set with [`TlsConfig::root_certificates_pem`].
    ///
    /// With rustls this is rustls-platform-verifier (feature
    /// `platform-verifier`); without that feature, native-tls and the roots it
    /// loads (feature `native-tls`).
    #[cfg(any(feature = "platform-verifier", feature = "native-tls"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "platform-verifier", feature = "native-tls"))))]
    #[must_use]
    pub fn platform_roots(mut self) -> Self {
        self.roots = Roots::Platform;
        self
    }

    /// Uses the system's TLS library (OpenSSL on Linux, Secure Transport on
    /// macOS, SChannel on Windows) even when rustls is compiled in.
    #[cfg(feature = "native-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-tls")))]
    #[must_use]
    pub fn native_tls(mut self) -> Self {
        self.native_tls = true;
        self
    }

    fn provider_name(&self) -> &'static str {
        #[cfg(feature = "native-tls")]
        if self.native_tls || !cfg!(feature = "rustls") {
            return "native-tls";
        }
        #[cfg(all(feature = "native-tls", not(feature = "platform-verifier")))]
        if matches!(self.roots, Roots::Platform) {
            return "native-tls";
        }
        if cfg!(feature = "rustls") { "rustls" } else { "none" }
    }

    /// The ureq agent for this configuration. It follows no redirect: one
    /// could downgrade to plain http or carry the sink's headers elsewhere, so
    /// a 3xx is a failed delivery.
    pub(crate) fn agent(&self, timeout: Duration, user_agent: &str, proxy: Option<ureq::Proxy>) -> ureq::Agent {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(user_agent);
        if let Some(proxy) = proxy {
            config = config.proxy(Some(proxy));
        }
        #[cfg(any(feature = "rustls", feature = "native-tls"))]
        {
            config = config.tls_config(self.ureq_config());
        }
        config.build().new_agent()
    }

    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    fn ureq_config(&self) -> ureq::tls::TlsConfig {
        use ureq::tls::{RootCerts, TlsProvider};
        let provider = match self.provider_name() {
            "native-tls" => TlsProvider::NativeTls,
            _ => TlsProvider::Rustls,
        };
        let roots = match &self.roots {
            Roots::Bundled => RootCerts::WebPki,
            #[cfg(any(feature = "platform-verifier", feature = "native-tls"))]
            Roots::Platform => RootCerts::PlatformVerifier,
            Roots::Only(certificates) => RootCerts::Specific(certificates.clone()),
        };
        ureq::tls::TlsConfig::builder()
            .provider(provider)
            .root_certs(roots)
            .build()
    }
}

/// Whether a failed request may succeed if tried again: network errors and
/// timeouts, not a refused certificate or a malformed request. A certificate
/// the TLS library rejects surfaces as an I/O error of kind `InvalidData`.
pub(crate) fn is_transient(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Io(error) => error.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_)
        | ureq::Error::ConnectProxyFailed(_) => true,
        _ => false,
    }
}

/// Checks a URL a sink posts to, when the sink is built: `http` or `https`, a
/// host, no spaces or control characters and, with `needs_tls`, TLS compiled
/// in for `https`. Plain `http` to a host beyond this machine is allowed, with
/// a warning.
pub(crate) fn check_url(what: &str, url: &str, needs_tls: bool) -> Result<(), Error> {
    let scheme_error = || Error::config(format!("{what} url must start with http:// or https://"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(scheme_error());
    };
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Err(scheme_error());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::config(format!(
            "{what} url must not contain spaces or control characters"
        )));
    }
    let host = host(rest);
    if host.is_empty() {
        return Err(Error::config(format!("{what} url has no host")));
    }
    if https && needs_tls && !TLS {
        return Err(Error::new(
            ErrorKind::TlsUnavailable,
            format!(
                "{what} url {} is https, but zt-monitoring was built without tls: enable its `rustls` or `native-tls` feature",
                redacted_url(url)
            ),
        ));
    }
    if !https && !is_loopback(host) {
        tracing::warn!(
            target: "zt::monitoring",
            url = %redacted_url(url),
            "{what} sends over plain http to a host beyond this machine; use https"
        );
    }
    Ok(())
}

/// The host of the part of a URL after `scheme://`, without brackets.
fn host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if let Some(bracketed) = host_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// Whether `host` names this machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The scheme and host of a URL, without path, query or credentials: chat
/// services put their secret in the path.
pub(crate) fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[invalid]".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}/…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("webhook", "ftp://x", true).is_err());
        assert!(check_url("webhook", "http://", true).is_err());
        assert!(check_url("webhook", "http://a b", true).is_err());
        assert!(check_url("webhook", "http://127.0.0.1:9/x", true).is_ok());
        assert_eq!(host("user:pw@[::1]:80/x"), "::1");
        assert_eq!(host("example.com:443?x"), "example.com");
        assert!(is_loopback("::1") && is_loopback("127.0.0.2") && is_loopback("LOCALHOST"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("example.com"));
        assert_eq!(redacted_url("http://user:pw@host:80/x?y"), "http://host:80/…");
    }

    #[test]
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    fn https_is_allowed_with_tls() {
        assert!(check_url("webhook", "https://hooks.slack.com/services/T/B/X", true).is_ok());
    }

    #[test]
    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    fn https_without_tls_is_refused_when_built() {
        let error = check_url("webhook", "https://hooks.slack.com/services/T/B/SECRET", true).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TlsUnavailable);
        let message = error.to_string();
        assert!(message.contains("`rustls`") && !message.contains("SECRET"), "{message}");
        // A caller's own agent may bring TLS; the URL is then not refused.
        assert!(check_url("webhook", "https://hooks.slack.com/x", false).is_ok());
    }

    #[test]
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    fn root_certificates_must_parse() {
        let error = TlsConfig::new().root_certificates_pem("no pem here").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        let error = TlsConfig::new()
            .root_certificates_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert_eq!(error.to_string(), "root certificate pem is malformed");
        assert!(std::error::Error::source(&error).is_some());
        let one = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let config = TlsConfig::new()
            .root_certificates_pem(one)
            .unwrap()
            .root_certificates_pem(format!("{one}{one}"))
            .unwrap();
        assert!(format!("{config:?}").contains("3 certificate(s)"), "{config:?}");
    }
}
