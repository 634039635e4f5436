//! TLS for listening endpoints (rustls with the ring provider): loads and checks an endpoint's key,
//! certificate chain, CA certificates and cipher list, and reports each problem with the config
//! field it came from, so `switchboard check` can name the file and what is wrong with it. Also
//! the client side of a router link ([`link_client_config`]), and what the management API and the
//! metrics show of a certificate ([`certificate_summary`]).

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{LinkTlsConfig, TlsConfig};

/// A problem with an endpoint's TLS material: the config field (`key`, `certificate`,
/// `chain_certificates[0]`, `ca_certificates[1]`, `ciphers`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem {
    /// The field of the `tls` section.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> TlsProblem {
    TlsProblem {
        field: field.into(),
        message: message.into(),
    }
}

/// OpenSSL cipher names (what Crossbar configs carry) and the rustls suites they mean. TLS 1.3
/// suites are not configurable through OpenSSL cipher strings either; they are always enabled.
const OPENSSL_CIPHER_NAMES: [(&str, &str); 9] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
];

/// The crypto provider with the TLS 1.2 suites restricted to `ciphers` (an OpenSSL-style `:`
/// list). Names rustls does not implement (CBC and DHE suites, for example) are skipped, as
/// OpenSSL skips unknown names; a list naming none it implements is an error.
fn provider(ciphers: Option<&str>) -> Result<CryptoProvider, TlsProblem> {
    let mut provider = rustls::crypto::ring::default_provider();
    let Some(list) = ciphers else {
        return Ok(provider);
    };
    let wanted: Vec<&str> = list
        .split([':', ',', ' '])
        .filter(|n| !n.is_empty())
        .filter_map(|name| {
            OPENSSL_CIPHER_NAMES
                .iter()
                .find(|(openssl, rustls)| *openssl == name || *rustls == name)
                .map(|(_, rustls)| *rustls)
        })
        .collect();
    if wanted.is_empty() {
        let known: Vec<&str> = OPENSSL_CIPHER_NAMES.iter().map(|(o, _)| *o).collect();
        return Err(problem(
            "ciphers",
            format!(
                "none of the ciphers in {list:?} is supported (supported: {})",
                known.join(":")
            ),
        ));
    }
    provider.cipher_suites.retain(|suite| {
        let name = format!("{:?}", suite.suite());
        name.starts_with("TLS13_") || wanted.contains(&name.as_str())
    });
    Ok(provider)
}

fn read(base: &Path, field: &str, file: &Path) -> Result<Vec<u8>, TlsProblem> {
    std::fs::read(base.join(file))
        .map_err(|e| problem(field, format!("cannot read `{}`: {e}", file.display())))
}

fn certificates(
    base: &Path,
    field: &str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let pem = read(base, field, file)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            problem(
                field,
                format!("`{}` is not a PEM certificate file: {e}", file.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(problem(
            field,
            format!("`{}` holds no PEM certificate", file.display()),
        ));
    }
    Ok(certs)
}

/// The PEM private key in `file`.
fn private_key(
    base: &Path,
    field: &str,
    file: &Path,
) -> Result<PrivateKeyDer<'static>, TlsProblem> {
    let pem = read(base, field, file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        problem(
            field,
            format!("`{}` holds no PEM private key: {e}", file.display()),
        )
    })
}

/// Adds the CA certificates in `file` to `roots`, each problem under `field`.
fn add_roots(
    roots: &mut rustls::RootCertStore,
    base: &Path,
    field: &str,
    file: &Path,
    problems: &mut Vec<TlsProblem>,
) {
    match certificates(base, field, file) {
        Ok(certs) => {
            for cert in certs {
                if let Err(e) = roots.add(cert) {
                    problems.push(problem(field, format!("`{}`: {e}", file.display())));
                }
            }
        }
        Err(p) => problems.push(p),
    }
}

/// Refuses a certificate outside its validity period.
fn check_validity(field: &str, file: &Path, cert: &CertificateDer<'_>) -> Result<(), TlsProblem> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| {
        problem(
            field,
            format!("`{}` is not a valid X.509 certificate: {e}", file.display()),
        )
    })?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        return Err(problem(
            field,
            format!(
                "certificate `{}` expired on {}",
                file.display(),
                validity.not_after
            ),
        ));
    }
    if validity.not_before > now {
        return Err(problem(
            field,
            format!(
                "certificate `{}` is not valid before {}",
                file.display(),
                validity.not_before
            ),
        ));
    }
    Ok(())
}

/// The `tls-server-end-point` channel binding data of the endpoint's leaf certificate (RFC 5929,
/// section 4.1): its hash with the hash function of its signature algorithm, where that is SHA-384
/// or SHA-512, and SHA-256 otherwise (RFC 5929 maps MD5 and SHA-1 to SHA-256; for signatures
/// without a fixed hash, such as Ed25519 or RSASSA-PSS, it leaves the binding undefined, and
/// SHA-256 is what clients use in practice).
pub fn server_end_point(cfg: &TlsConfig, base: &Path) -> Option<Vec<u8>> {
    let certs = certificates(base, "certificate", &cfg.certificate).ok()?;
    let leaf = certs.first()?;
    Some(end_point_hash(leaf.as_ref()))
}

fn end_point_hash(der: &[u8]) -> Vec<u8> {
    use x509_parser::oid_registry::{
        OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ECDSA_WITH_SHA512,
    };
    let signature = x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.signature_algorithm.algorithm.clone());
    let algorithm = match signature {
        Some(oid) if oid == OID_SIG_ECDSA_WITH_SHA384 || oid == OID_PKCS1_SHA384WITHRSA => {
            &ring::digest::SHA384
        }
        Some(oid) if oid == OID_SIG_ECDSA_WITH_SHA512 || oid == OID_PKCS1_SHA512WITHRSA => {
            &ring::digest::SHA512
        }
        _ => &ring::digest::SHA256,
    };
    ring::digest::digest(algorithm, der).as_ref().to_vec()
}

/// Builds the rustls server config of an endpoint; relative paths resolve against `base`.
/// Returns every problem found.
pub fn server_config(cfg: &TlsConfig, base: &Path) -> Result<Arc<ServerConfig>, Vec<TlsProblem>> {
    let mut problems = Vec::new();
    let provider = provider(cfg.ciphers.as_deref())
        .map_err(|p| problems.push(p))
        .ok();
    let key = private_key(base, "key", &cfg.key)
        .map_err(|p| problems.push(p))
        .ok();
    let mut chain = certificates(base, "certificate", &cfg.certificate)
        .and_then(|certs| {
            check_validity("certificate", &cfg.certificate, &certs[0])?;
            Ok(certs)
        })
        .map_err(|p| problems.push(p))
        .ok();
    for (i, file) in cfg.chain_certificates.iter().enumerate() {
        match certificates(base, &format!("chain_certificates[{i}]"), file) {
            Ok(certs) => {
                if let Some(chain) = &mut chain {
                    chain.extend(certs);
                }
            }
            Err(p) => problems.push(p),
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, file) in cfg.ca_certificates.iter().enumerate() {
        add_roots(
            &mut roots,
            base,
            &format!("ca_certificates[{i}]"),
            file,
            &mut problems,
        );
    }
    let (Some(provider), Some(key), Some(chain)) = (provider, key, chain) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| vec![problem("ciphers", e.to_string())])?;
    let builder = if roots.is_empty() {
        builder.with_no_client_auth()
    } else {
        // Client certificates are verified against the CAs when presented; which role they get
        // is the `tls` authentication method's business.
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| vec![problem("ca_certificates", e.to_string())])?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        let message = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key `{}` does not match the certificate `{}`",
                cfg.key.display(),
                cfg.certificate.display()
            ),
            other => format!(
                "cannot use `{}` with `{}`: {other}",
                cfg.key.display(),
                cfg.certificate.display()
            ),
        };
        vec![problem("key", message)]
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS client config of a router link: the other router's certificate checked against `ca`
/// and `ca_certificates` (the public web roots when neither is given), and the client
/// certificate when `cert` and `key` are given.
pub fn link_client_config(
    cfg: &LinkTlsConfig,
    base: &Path,
) -> Result<Arc<rustls::ClientConfig>, Vec<TlsProblem>> {
    let mut problems = Vec::new();
    let mut roots = rustls::RootCertStore::empty();
    let cas = cfg.ca.iter().map(|f| ("ca".to_owned(), f)).chain(
        cfg.ca_certificates
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("ca_certificates[{i}]"), f)),
    );
    let mut any_ca = false;
    for (field, file) in cas {
        any_ca = true;
        add_roots(&mut roots, base, &field, file, &mut problems);
    }
    if !any_ca {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let client_auth = match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(base, "cert", cert)
                .map_err(|p| problems.push(p))
                .ok();
            let key = private_key(base, "key", key)
                .map_err(|p| problems.push(p))
                .ok();
            chain.zip(key)
        }
        (None, None) => None,
        (Some(_), None) => {
            problems.push(problem("key", "`cert` needs its `key`"));
            None
        }
        (None, Some(_)) => {
            problems.push(problem("cert", "`key` needs its `cert`"));
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| vec![problem("tls", e.to_string())])?
        .with_root_certificates(roots);
    let config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            vec![problem(
                "key",
                format!("the certificate and key do not go together: {e}"),
            )]
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::end_point_hash;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).expect("key");
        rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn the_end_point_hash_follows_the_certificates_signature_hash() {
        let p256 = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let p384 = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
        let ed25519 = self_signed(&rcgen::PKCS_ED25519);
        let sha = |alg, der: &[u8]| ring::digest::digest(alg, der).as_ref().to_vec();
        assert_eq!(end_point_hash(&p256), sha(&ring::digest::SHA256, &p256));
        assert_eq!(end_point_hash(&p384), sha(&ring::digest::SHA384, &p384));
        assert_eq!(
            end_point_hash(&ed25519),
            sha(&ring::digest::SHA256, &ed25519)
        );
    }
}

/// What the management API and the metrics show of a certificate file: the first certificate of
/// the file (the server's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// Its subject.
    pub subject: String,
    /// Its subject alternative names.
    pub names: Vec<String>,
    /// When it expires, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// Reads the first certificate of the PEM file `file`.
pub fn certificate_summary(file: &Path) -> Result<CertificateSummary, String> {
    let pem = std::fs::read(file).map_err(|e| e.to_string())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| e.to_string())?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&pem.contents).map_err(|e| e.to_string())?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(CertificateSummary {
        subject: cert.subject().to_string(),
        names,
        not_after: cert.validity().not_after.timestamp(),
    })
}
