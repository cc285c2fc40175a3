//! TLS for `chat up` and `chat gateway`: browsers on a real deployment need
//! `https://` and `wss://`, so the server terminates TLS itself when given a
//! certificate chain and key (PEM). rustls with the ring provider, the one
//! TLS stack of the workspace.

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the certificate chain and its private key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both paths, or neither: one without the other is a mistake worth a clear line.
    pub fn from_options(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> anyhow::Result<Option<TlsFiles>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => {
                anyhow::bail!("CHAT_TLS_CERT is set but CHAT_TLS_KEY is not; set both or neither")
            }
            (None, Some(_)) => {
                anyhow::bail!("CHAT_TLS_KEY is set but CHAT_TLS_CERT is not; set both or neither")
            }
        }
    }

    /// A server configuration serving this certificate (TLS 1.2 and 1.3).
    pub fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        let certs = read_chain(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).with_context(|| {
            format!("CHAT_TLS_KEY: no PEM private key in {}", self.key.display())
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS: the ring provider supports no default protocol version")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("CHAT_TLS_CERT/CHAT_TLS_KEY: the key does not fit the certificate")
    }
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("CHAT_TLS_CERT: cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("CHAT_TLS_CERT: {} is not PEM", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("CHAT_TLS_CERT: no certificate in {}", path.display());
    }
    Ok(certs)
}

/// `origins` as a TLS server's: the derived `http://` defaults become
/// `https://` (an explicit CHAT_PUBLIC_URL is kept as given).
pub fn secure_origins(origins: Vec<String>, explicit: bool) -> Vec<String> {
    if explicit {
        return origins;
    }
    origins
        .into_iter()
        .map(|o| match o.strip_prefix("http://") {
            Some(rest) => format!("https://{rest}"),
            None => o,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_or_neither() {
        assert!(matches!(TlsFiles::from_options(None, None), Ok(None)));
        assert!(TlsFiles::from_options(Some("c".into()), None).is_err());
        assert!(TlsFiles::from_options(None, Some("k".into())).is_err());
        assert!(matches!(
            TlsFiles::from_options(Some("c".into()), Some("k".into())),
            Ok(Some(_))
        ));
    }

    #[test]
    fn derived_origins_become_https_explicit_ones_stay() {
        let derived = vec![
            "http://127.0.0.1:8443".to_owned(),
            "http://localhost:8443".to_owned(),
        ];
        assert_eq!(
            secure_origins(derived.clone(), false),
            vec!["https://127.0.0.1:8443", "https://localhost:8443"]
        );
        assert_eq!(secure_origins(derived.clone(), true), derived);
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let err = format!("{:#}", files.server_config().expect_err("refused"));
        assert!(
            err.contains("CHAT_TLS_CERT") && err.contains("/nonexistent/cert.pem"),
            "{err}"
        );
    }
}
