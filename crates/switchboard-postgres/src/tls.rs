//! TLS to the database, as libpq's `sslmode` says: a rustls client configuration (the ring
//! provider, as everywhere in Switchboard) for tokio-postgres's connections, with the server's
//! certificate verified as the mode asks. (The durable tier's replication connection runs
//! without TLS: `check` refuses it with a mode that requires TLS.)

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::PostgresConnectionOptions;

/// What `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No TLS.
    Disable,
    /// TLS where the server offers it (`allow`, `prefer`), the certificate not verified.
    Prefer,
    /// TLS or no connection, the certificate not verified unless `sslrootcert` is given.
    Require,
    /// TLS, the certificate chain verified.
    VerifyCa,
    /// TLS, the chain and the host name verified.
    VerifyFull,
}

impl Mode {
    /// The mode of an `sslmode` value (`None` where it is none of libpq's).
    pub fn parse(sslmode: Option<&str>) -> Option<Self> {
        Some(match sslmode.unwrap_or("prefer") {
            "disable" => Mode::Disable,
            // libpq's `allow` tries without TLS first; TLS where offered serves the same servers.
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    /// tokio-postgres's mode (it leaves verification to the TLS configuration).
    pub fn ssl_mode(self) -> tokio_postgres::config::SslMode {
        match self {
            Mode::Disable => tokio_postgres::config::SslMode::Disable,
            Mode::Prefer => tokio_postgres::config::SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// A problem with the TLS options: the key (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`)
/// and what is wrong.
pub type Problem = (&'static str, String);

/// The client configuration for `options` (which `switchboard check` builds too, so that every
/// problem is named with its key and file before the node starts).
pub fn client_config(options: &PostgresConnectionOptions) -> Result<ClientConfig, Problem> {
    let mode = Mode::parse(options.sslmode.as_deref()).ok_or_else(|| {
        (
            "sslmode",
            format!(
                "expected disable, allow, prefer, require, verify-ca or verify-full; got {:?}",
                options.sslmode.as_deref().unwrap_or_default()
            ),
        )
    })?;
    if mode == Mode::VerifyCa && options.sslrootcert.is_none() {
        // Any publicly trusted certificate of any name would do: libpq refuses it too.
        return Err((
            "sslrootcert",
            "sslmode `verify-ca` needs `sslrootcert`, the CA to verify against".into(),
        ));
    }
    let mut roots = RootCertStore::empty();
    match &options.sslrootcert {
        Some(path) => {
            for cert in certificates(path).map_err(|e| ("sslrootcert", e))? {
                roots.add(cert).map_err(|e| {
                    (
                        "sslrootcert",
                        format!("{}: not a CA certificate: {e}", path.display()),
                    )
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = provider();
    let chain = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| ("sslrootcert", format!("cannot verify certificates: {e}")))
    };
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Mode::VerifyFull => chain(roots)?,
        Mode::VerifyCa => Arc::new(ChainOnly(chain(roots)?)),
        // libpq: `require` with a root certificate verifies like `verify-ca`.
        Mode::Require if options.sslrootcert.is_some() => Arc::new(ChainOnly(chain(roots)?)),
        Mode::Disable | Mode::Prefer | Mode::Require => Arc::new(Unverified(provider.clone())),
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("sslmode", format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&options.sslcert, &options.sslkey) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert).map_err(|e| ("sslcert", e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                (
                    "sslkey",
                    format!("cannot read the private key {}: {e}", key.display()),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                (
                    "sslkey",
                    format!("the client certificate and key do not go together: {e}"),
                )
            })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(_), None) => Err(("sslkey", "`sslcert` needs its `sslkey`".into())),
        (None, Some(_)) => Err(("sslcert", "`sslkey` needs its `sslcert`".into())),
    }
}

/// tokio-postgres's TLS connector for `options`.
pub fn connector(
    options: &PostgresConnectionOptions,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Problem> {
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
        client_config(options)?,
    ))
}

/// The options with their files relative to `base` (the config file's directory).
pub fn resolve(options: &PostgresConnectionOptions, base: &Path) -> PostgresConnectionOptions {
    let mut resolved = options.clone();
    for file in [
        &mut resolved.sslrootcert,
        &mut resolved.sslcert,
        &mut resolved.sslkey,
    ] {
        if let Some(path) = file.as_mut() {
            *path = base.join(&*path);
        }
    }
    resolved
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate (libpq's meaning): encrypted, but any
/// certificate is taken; the handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmodes_are_libpqs() {
        assert_eq!(Mode::parse(None), Some(Mode::Prefer));
        assert_eq!(Mode::parse(Some("allow")), Some(Mode::Prefer));
        assert_eq!(Mode::parse(Some("verify-full")), Some(Mode::VerifyFull));
        assert_eq!(Mode::parse(Some("verify_full")), None);
        let options = |mode: &str| PostgresConnectionOptions {
            sslmode: Some(mode.into()),
            ..PostgresConnectionOptions::default()
        };
        for mode in ["disable", "prefer", "require", "verify-full"] {
            assert!(client_config(&options(mode)).is_ok(), "{mode}");
        }
        assert_eq!(
            client_config(&options("verify-ca")).expect_err("no CA").0,
            "sslrootcert"
        );
        let missing = PostgresConnectionOptions {
            sslrootcert: Some("/nonexistent/ca.pem".into()),
            ..options("verify-full")
        };
        let (key, why) = client_config(&missing).expect_err("no such file");
        assert_eq!(key, "sslrootcert");
        assert!(why.contains("/nonexistent/ca.pem"), "{why}");
        let half = PostgresConnectionOptions {
            sslcert: Some("/nonexistent/client.pem".into()),
            ..options("require")
        };
        assert_eq!(client_config(&half).expect_err("no key").0, "sslkey");
    }
}
