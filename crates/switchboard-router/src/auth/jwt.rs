//! JWT tickets (third-party identity, OpenID Connect style): signature against a JWKS file, issuer,
//! audience and expiry. jsonwebtoken parses tokens and checks the claims; the signatures are
//! checked by ring, plugged into jsonwebtoken as its `CryptoProvider` (verification only).

use std::path::Path;
use std::sync::Once;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, new_error};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use jsonwebtoken::{Validation, decode, decode_header};
use ring::signature as sig;

/// The most clock skew we honour. More than a year is not skew but a misconfiguration, and the cap
/// keeps jsonwebtoken's `now - leeway` from underflowing.
const MAX_LEEWAY_S: u64 = 365 * 24 * 3600;

/// Validates tokens of one identity provider.
#[derive(Debug)]
pub struct JwtValidator {
    keys: Vec<VerificationKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_s: u64,
}

/// One public key of the JWKS and the algorithms it may verify.
#[derive(Debug)]
struct VerificationKey {
    kid: Option<String>,
    /// Those of the key type, or the one the JWK names in `alg`.
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

impl JwtValidator {
    /// Loads the public keys of a JWKS file. `issuer` and `audience`, when given, must match the
    /// token's `iss` and `aud`; `leeway_s` is the clock skew allowed on `exp` and `nbf`.
    ///
    /// RSA (RS256/384/512, PS256/384/512, 2048 to 8192 bits), EC P-256 (ES256), EC P-384 (ES384) and
    /// OKP Ed25519 (EdDSA) keys are used. Shared secrets (`oct`) refuse the whole file. Keys for
    /// encryption or of a type ring cannot verify (P-521, Ed448...) are skipped with a warning, as
    /// identity providers publish such keys next to their signing keys; a file left with no usable
    /// key is refused.
    pub fn from_jwks_file(
        path: &Path,
        issuer: Option<String>,
        audience: Option<String>,
        leeway_s: u64,
    ) -> Result<Self, String> {
        install_provider();
        let file = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("JWKS file {file}: cannot read it: {e}"))?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|e| format!("JWKS file {file}: not a JSON Web Key Set: {e}"))?;

        let mut keys = Vec::with_capacity(set.keys.len());
        let mut skipped = Vec::new();
        for (index, jwk) in set.keys.iter().enumerate() {
            let label = match &jwk.common.key_id {
                Some(kid) => format!("key {kid:?}"),
                None => format!("key #{}", index + 1),
            };
            match load_key(jwk) {
                Ok(Loaded::Key(key)) => keys.push(key),
                Ok(Loaded::Skipped(why)) => {
                    tracing::warn!(jwks = %file, key = %label, "JWKS key skipped: {why}");
                    skipped.push(format!("{label}: {why}"));
                }
                Err(why) => return Err(format!("JWKS file {file}: {label}: {why}")),
            }
        }
        if keys.is_empty() {
            let detail = if skipped.is_empty() {
                "it has no keys".to_string()
            } else {
                format!("no usable signature key ({})", skipped.join("; "))
            };
            return Err(format!("JWKS file {file}: {detail}"));
        }
        Ok(JwtValidator {
            keys,
            issuer,
            audience,
            leeway_s: leeway_s.min(MAX_LEEWAY_S),
        })
    }

    /// The token's claims when its signature, issuer, audience and times check out; otherwise why not.
    pub fn validate(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        install_provider();
        check_raw_header(token)?;
        let header = decode_header(token).map_err(|_| "unsupported token header".to_string())?;
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err("HMAC-signed tokens are not accepted".into());
        }

        // By kid when the token names one (falling back to keys without a kid); else every key.
        let mut candidates: Vec<&VerificationKey> = match &header.kid {
            Some(kid) => {
                let named: Vec<_> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if named.is_empty() {
                    self.keys.iter().filter(|k| k.kid.is_none()).collect()
                } else {
                    named
                }
            }
            None => self.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err("unknown key id".into());
        }
        candidates.retain(|k| k.algorithms.contains(&header.alg));
        if candidates.is_empty() {
            return Err("algorithm does not match the key".into());
        }

        let validation = self.validation(header.alg);
        for key in candidates {
            match decode::<serde_json::Map<String, serde_json::Value>>(token, &key.key, &validation)
            {
                Ok(data) => return Ok(data.claims),
                // Another key may have made it (no kid, or a kid shared during a rotation).
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                // The signature checks out and a claim does not, or the token is malformed: no
                // other key changes that.
                Err(e) => return Err(describe(e.kind())),
            }
        }
        Err("bad signature".into())
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        // jsonwebtoken by default refuses any token with an `aud` when no audience is configured;
        // we check the audience only when one is configured, as documented.
        validation.validate_aud = self.audience.is_some();
        if let Some(audience) = &self.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

/// Checks jsonwebtoken's header parsing would give a vaguer answer to: an unsigned token, and
/// critical extensions (RFC 7515, 4.1.11: a recipient that does not understand them must reject the
/// token, and we understand none).
fn check_raw_header(token: &str) -> Result<(), String> {
    let malformed = || "malformed token".to_string();
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header = BASE64URL.decode(header).map_err(|_| malformed())?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| malformed())?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or_else(malformed)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err("unsigned token (alg none) refused".into());
    }
    if header.get("crit").is_some() {
        return Err("unsupported critical header".into());
    }
    Ok(())
}

/// Short reasons; never the token or its contents (the claim names come from our own list).
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".into(),
        ErrorKind::ImmatureSignature => "token not yet valid".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidAudience => "wrong audience".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim {claim}"),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::InvalidKeyFormat => "algorithm does not match the key".into(),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token".into(),
        _ => "invalid token".into(),
    }
}

enum Loaded {
    Key(VerificationKey),
    /// Not for us, with the reason.
    Skipped(String),
}

fn load_key(jwk: &Jwk) -> Result<Loaded, String> {
    let is_oct = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => true,
        AlgorithmParameters::Other(other) => {
            other.fields.get("kty").and_then(|k| k.as_str()) == Some("oct")
        }
        _ => false,
    };
    if is_oct {
        return Err(
            "a shared secret (kty \"oct\") has no place in a JWKS of an identity \
                    provider's public keys; HMAC keys are refused"
                .into(),
        );
    }
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Ok(Loaded::Skipped("an encryption key (use \"enc\")".into()));
    }
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => {
            return Ok(Loaded::Skipped(
                "an encryption key (alg RSA-OAEP/RSA1_5)".into(),
            ));
        }
        Some(KeyAlgorithm::HS256 | KeyAlgorithm::HS384 | KeyAlgorithm::HS512) => {
            return Err("names an HMAC algorithm; HMAC keys are refused".into());
        }
        Some(alg) => match Algorithm::try_from(alg) {
            Ok(alg) => Some(alg),
            Err(_) => {
                return Ok(Loaded::Skipped(
                    "an algorithm this router does not know".into(),
                ));
            }
        },
    };

    let malformed = |what: &str| format!("malformed {what}");
    let (key, algorithms) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = BASE64URL
                .decode(&rsa.n)
                .map_err(|_| malformed("RSA modulus"))?;
            BASE64URL
                .decode(&rsa.e)
                .map_err(|_| malformed("RSA exponent"))?;
            // ring verifies 2048 to 8192-bit moduli only; say so now rather than failing every
            // token with "bad signature".
            let bits = bit_length(&n);
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "RSA key of {bits} bits; 2048 to 8192 bits are supported"
                ));
            }
            let key = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
                .map_err(|_| malformed("RSA key"))?;
            (key, AlgorithmFamily::Rsa.algorithms().to_vec())
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (alg, len) = match ec.curve {
                EllipticCurve::P256 => (Algorithm::ES256, 32),
                EllipticCurve::P384 => (Algorithm::ES384, 48),
                EllipticCurve::P521 => {
                    return Ok(Loaded::Skipped(
                        "curve P-521 (ES512) is not supported".into(),
                    ));
                }
                _ => return Err("an EC key on a curve that is not a NIST curve".into()),
            };
            let x = BASE64URL
                .decode(&ec.x)
                .map_err(|_| malformed("EC x coordinate"))?;
            let y = BASE64URL
                .decode(&ec.y)
                .map_err(|_| malformed("EC y coordinate"))?;
            if x.len() != len || y.len() != len {
                return Err(malformed(
                    "EC key (coordinate length does not fit the curve)",
                ));
            }
            let key =
                DecodingKey::from_ec_components(&ec.x, &ec.y).map_err(|_| malformed("EC key"))?;
            (key, vec![alg])
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Ok(Loaded::Skipped(
                    "an OKP key on a curve other than Ed25519".into(),
                ));
            }
            let x = BASE64URL
                .decode(&okp.x)
                .map_err(|_| malformed("Ed25519 key"))?;
            if x.len() != 32 {
                return Err(malformed("Ed25519 key (not 32 bytes)"));
            }
            let key =
                DecodingKey::from_ed_components(&okp.x).map_err(|_| malformed("Ed25519 key"))?;
            (key, vec![Algorithm::EdDSA])
        }
        AlgorithmParameters::Other(other) => {
            // kty "OKP" with an unknown curve (X25519, Ed448) lands here too.
            let kty = other
                .fields
                .get("kty")
                .and_then(|k| k.as_str())
                .unwrap_or("?");
            return Ok(Loaded::Skipped(format!(
                "key type {kty:?} is not supported"
            )));
        }
        // AlgorithmParameters is non-exhaustive; OctetKey was refused above.
        _ => {
            return Ok(Loaded::Skipped(
                "a key type this router does not know".into(),
            ));
        }
    };

    let algorithms = match declared {
        None => algorithms,
        Some(alg) if algorithms.contains(&alg) => vec![alg],
        Some(alg) => return Err(format!("its alg {alg:?} does not fit its key type")),
    };
    Ok(Loaded::Key(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    }))
}

/// Bits of a big-endian unsigned integer, leading zero bytes and bits not counted.
fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        None => 0,
        Some(first) => (be.len() - first - 1) * 8 + (8 - be[first].leading_zeros() as usize),
    }
}

// ---- ring as jsonwebtoken's crypto provider (verification only) ----

/// jsonwebtoken (with its default features off) has no crypto of its own: this provider makes ring,
/// which rustls already brings, do the signature checks.
static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: ring_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: unsupported_key_util,
        rsa_pub_components_from_public_key: unsupported_key_util,
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest,
    },
};

/// Installs [`RING_PROVIDER`] as jsonwebtoken's process-wide provider, once, before our first use of
/// jsonwebtoken. If another part of the process installed one first, that one stays (jsonwebtoken
/// allows one per process) and is used instead.
fn install_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = RING_PROVIDER.install_default();
    });
}

fn unsupported() -> jsonwebtoken::errors::Error {
    new_error(ErrorKind::Provider(
        "not supported by the router's ring provider".into(),
    ))
}

fn unsupported_key_util(_: &[u8]) -> jsonwebtoken::errors::Result<(Vec<u8>, Vec<u8>)> {
    Err(unsupported())
}

/// The router verifies tokens; it never issues them.
fn no_signer(_: &Algorithm, _: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    Err(new_error(ErrorKind::Signing(
        "this router only verifies tokens".into(),
    )))
}

/// JWK thumbprints (RFC 7638).
fn compute_digest(data: &[u8], hash: ThumbprintHash) -> jsonwebtoken::errors::Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(unsupported()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

fn ring_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    // Never HMAC: shared secrets are refused at load, and a public key must never be taken for an
    // HMAC secret (the classic RS256-to-HS256 confusion). The key's family must fit the algorithm.
    if algorithm.family() == AlgorithmFamily::Hmac || key.family() != algorithm.family() {
        return Err(new_error(ErrorKind::InvalidAlgorithm));
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        if ring_verify(self.algorithm, &self.key, message, signature) {
            Ok(())
        } else {
            Err(jsonwebtoken::signature::Error::new())
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn ring_verify(algorithm: Algorithm, key: &DecodingKey, message: &[u8], signature: &[u8]) -> bool {
    let rsa = |params: &'static sig::RsaParameters| match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => sig::RsaPublicKeyComponents { n, e }
            .verify(params, message, signature)
            .is_ok(),
        // A DER RSAPublicKey (from PEM/DER constructors; JWKs give the modulus-exponent kind).
        DecodingKeyKind::SecretOrDer(der) => sig::UnparsedPublicKey::new(params, der)
            .verify(message, signature)
            .is_ok(),
    };
    // EC keys are the uncompressed point 0x04 || x || y, Ed25519 keys the 32 raw bytes, both as
    // ring expects them.
    let raw = |alg: &'static dyn sig::VerificationAlgorithm| match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => sig::UnparsedPublicKey::new(alg, bytes)
            .verify(message, signature)
            .is_ok(),
        DecodingKeyKind::RsaModulusExponent { .. } => false,
    };
    match algorithm {
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => raw(&sig::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => raw(&sig::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => raw(&sig::ED25519),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::{Value, json};

    use super::*;

    /// A test-only RSA-2048 key (PKCS#1 DER, base64), made with `openssl genpkey`: ring can sign with
    /// RSA keys but not generate them.
    const RSA_PKCS1_DER_B64: &str = concat!(
        "MIIEogIBAAKCAQEAwefLmemBb/Y323+fRbaJ6MVHjPaVlo8DdeCJL2dzYzcMAk6+jKNZH5wmqWSg4+VOL87V8/wnQdR7",
        "Zt3T/BXUVR1zUYzazUIPOssqCQ6Djnfe5AyWUShEnn4/LfX1PkJS3jVcxGRyO/gLzpyRWg90+QXRluamCn1jPty80Be1",
        "Y+ynkoJL0Jh4gMvRmfO+zzF7IIdvvvHZVJcLmTXG9SoGe9rp52cHm09PrUcN48TQZMqgpbGkW31LPqdfvNkPHtQXxt5V",
        "RfZXEDvpU2DhukBPSQThY0R+Fq2e9epMy6gRqHAWqs7REoL+5PJ9mS4nPvIF5kaiGY+1HGuL8V4eE+o11QIDAQABAoIB",
        "ABbPzDYZMG8Ziky6YOR0qxjFTLuartJ9lKyjc8At7Xc4nKMQ3H3zIaMEXdAD1KG68k3RiX4gpgWql7HsWuoHL2msA0sO",
        "xRbstJn4GMPj/zodhA1UJcL6d8gllg00KFvgtZsKsBUys/W2Ir110evEccByHMwh6lrFkY1trpDUmTReCJMjk7GnlPw2",
        "IvHq74gQ1sJ6k88zZmSVofGU9ymSMnN3gv55UP+j36Msc1ZZUODfaLPnhHOp+fXCbVGqbVpKeH2e2vKros1BIn267eyK",
        "kLQ+flDXOxwptvam2UwuwHRy/6qFAOmOI370GZvY2RDuBDdi3XGUJaf+tHCHmrl/u4ECgYEA4hDrNuzrSAwRN8W80RYq",
        "POabWSGFMlo+Q5ik5OMzWzwnQdPQSa0z2PSkpWnWt285bouJnwes/IyUVDSkJjpvaCVsoERQwb2MOBvc7HvFjLVVmgzb",
        "uJ2SJ8yuXTqZgkvmjITSHtW9eRjykKhuHYZBD7Uqwl5/fLEZAN8PNqIP2ZECgYEA25S13e3+YlWt8fMZEEmmqNUjVGGN",
        "I473JSGbSMjN0+a3oCyuM4FvoDDlIWTbdnRUP3kLhTBFh1mKaNTIXc+/G1cW+dHybxv4BKl9VChZg9yPYnQsvag6o7VL",
        "FA5uoVFmJAeu4sM2HU1O3Xgjr1k6Yvycei3lJcEKzxkUjo4glgUCgYB5AaVmGRs3zX3J5MZVBRBG2Ql+hDrP4Q5DEInz",
        "Gsp6o5A/5Ckxxsxh7VHUWPrd5WNQkNBxl6I47ObYy/SxocXQcXfbsbWoftV3kzKGQxpTXx0bAJb8ExwQwbbzoFJbNFWM",
        "EeyHJNHu6DOuyvlmRF6/EbJ5qCuFiyZfGQcDr2vcgQKBgFMP2wgbminqjUVEF0wRAElHbvjheflkgFr8bnhG9Y1d7kJa",
        "BH+ZS/eF53cNZvNVJ/VmvZPhYbvEhFYJf8304y7db+SKpbGgG97vmmg2Zz45NcgheDc6Jwx8bO0mVHUTjJa+jUpcW+ET",
        "uGyQoLcZArwlILAbIl54urUCoMMYQn1dAoGAVYkvIxlFOQIRbn+9CtoTVbJAfAhqSRx2DCL3fp35/TANaoxZbn5DOpQ3",
        "EWg4mbuLrw9bjvzjUnwmKo9wG9Pi04Wu3DvpCbIhbZMhoA6C59RezLZQpUeNdbhkA4L8M0xEN7YxZxiFPyZrauYCYSS7",
        "FUxrIy+fNbqelVwK64ZxVhY=",
    );

    enum Signer {
        Es256(EcdsaKeyPair),
        Es384(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
        Rsa(RsaKeyPair),
    }

    fn es256() -> Signer {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer::Es256(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    fn es384() -> Signer {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P384_SHA384_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer::Es384(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    fn ed() -> Signer {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn rsa() -> Signer {
        let der = base64::engine::general_purpose::STANDARD
            .decode(RSA_PKCS1_DER_B64)
            .unwrap();
        Signer::Rsa(RsaKeyPair::from_der(&der).unwrap())
    }

    impl Signer {
        /// The public JWK, with `kid` when given.
        fn jwk(&self, kid: Option<&str>) -> Value {
            let b64 = |b: &[u8]| BASE64URL.encode(b);
            let mut jwk = match self {
                Signer::Es256(pair) | Signer::Es384(pair) => {
                    let point = pair.public_key().as_ref();
                    let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                    let crv = if matches!(self, Signer::Es256(_)) {
                        "P-256"
                    } else {
                        "P-384"
                    };
                    json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
                }
                Signer::Ed(pair) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
                }
                Signer::Rsa(pair) => {
                    let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                    json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)})
                }
            };
            if let Some(kid) = kid {
                jwk["kid"] = kid.into();
            }
            jwk
        }

        fn default_alg(&self) -> &'static str {
            match self {
                Signer::Es256(_) => "ES256",
                Signer::Es384(_) => "ES384",
                Signer::Ed(_) => "EdDSA",
                Signer::Rsa(_) => "RS256",
            }
        }

        fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                Signer::Es256(pair) | Signer::Es384(pair) => {
                    pair.sign(&rng, message).unwrap().as_ref().to_vec()
                }
                Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
                Signer::Rsa(pair) => {
                    let padding: &'static dyn sig::RsaEncoding = match alg {
                        "RS256" => &sig::RSA_PKCS1_SHA256,
                        "RS384" => &sig::RSA_PKCS1_SHA384,
                        "RS512" => &sig::RSA_PKCS1_SHA512,
                        "PS256" => &sig::RSA_PSS_SHA256,
                        "PS384" => &sig::RSA_PSS_SHA384,
                        "PS512" => &sig::RSA_PSS_SHA512,
                        other => panic!("no RSA padding for {other}"),
                    };
                    let mut out = vec![0; pair.public().modulus_len()];
                    pair.sign(padding, &rng, message, &mut out).unwrap();
                    out
                }
            }
        }

        /// header.payload.signature, the header being `{"alg", "typ", "kid"?}` plus `extra`.
        fn token_with(&self, alg: &str, kid: Option<&str>, extra: Value, claims: &Value) -> String {
            let mut header = json!({"alg": alg, "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            if let Value::Object(extra) = extra {
                for (k, v) in extra {
                    header[k] = v;
                }
            }
            let signing_input = format!(
                "{}.{}",
                BASE64URL.encode(header.to_string()),
                BASE64URL.encode(claims.to_string())
            );
            let signature = self.sign(alg, signing_input.as_bytes());
            format!("{signing_input}.{}", BASE64URL.encode(signature))
        }

        fn token(&self, kid: Option<&str>, claims: &Value) -> String {
            self.token_with(self.default_alg(), kid, json!({}), claims)
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    /// Claims that pass with [`validator`]'s issuer and audience.
    fn good_claims() -> Value {
        json!({
            "sub": "alice",
            "iss": "https://idp.example",
            "aud": "switchboard",
            "exp": now() + 600,
            "iat": now(),
        })
    }

    fn jwks_file(keys: &[Value]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(file, "{}", json!({ "keys": keys })).unwrap();
        file
    }

    fn validator(keys: &[Value]) -> JwtValidator {
        let file = jwks_file(keys);
        JwtValidator::from_jwks_file(
            file.path(),
            Some("https://idp.example".into()),
            Some("switchboard".into()),
            60,
        )
        .unwrap()
    }

    fn load_err(keys: &[Value]) -> String {
        let file = jwks_file(keys);
        let err = JwtValidator::from_jwks_file(file.path(), None, None, 60).unwrap_err();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        err
    }

    #[test]
    fn valid_tokens_of_every_key_type() {
        for signer in [es256(), es384(), ed(), rsa()] {
            let v = validator(&[signer.jwk(Some("k1"))]);
            let claims = v
                .validate(&signer.token(Some("k1"), &good_claims()))
                .unwrap();
            assert_eq!(claims["sub"], "alice");
            // Without a kid, the only key is tried.
            assert!(v.validate(&signer.token(None, &good_claims())).is_ok());
        }
    }

    #[test]
    fn every_rsa_algorithm() {
        let signer = rsa();
        let v = validator(&[signer.jwk(Some("r"))]);
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let token = signer.token_with(alg, Some("r"), json!({}), &good_claims());
            assert!(v.validate(&token).is_ok(), "{alg}");
        }
    }

    #[test]
    fn times() {
        let signer = es256();
        let v = validator(&[signer.jwk(Some("k"))]);
        let with = |changes: Value| {
            let mut claims = good_claims();
            for (k, val) in changes.as_object().unwrap() {
                if val.is_null() {
                    claims.as_object_mut().unwrap().remove(k);
                } else {
                    claims[k] = val.clone();
                }
            }
            v.validate(&signer.token(Some("k"), &claims))
        };
        assert_eq!(
            with(json!({"exp": now() - 3600})),
            Err("token expired".into())
        );
        // Within the leeway.
        assert!(with(json!({"exp": now() - 10})).is_ok());
        assert_eq!(with(json!({"exp": null})), Err("missing claim exp".into()));
        // jsonwebtoken counts an `exp` that is not a number as absent.
        assert_eq!(
            with(json!({"exp": "tomorrow"})),
            Err("missing claim exp".into())
        );
        assert_eq!(
            with(json!({"nbf": now() + 3600})),
            Err("token not yet valid".into())
        );
        assert!(with(json!({"nbf": now() + 10})).is_ok());
        assert!(with(json!({"nbf": now() - 10})).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let signer = ed();
        let v = validator(&[signer.jwk(Some("k"))]);
        let with = |key: &str, val: Value| {
            let mut claims = good_claims();
            if val.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = val;
            }
            v.validate(&signer.token(Some("k"), &claims))
        };
        assert_eq!(
            with("iss", json!("https://evil.example")),
            Err("wrong issuer".into())
        );
        assert_eq!(with("iss", Value::Null), Err("missing claim iss".into()));
        assert_eq!(
            with("aud", json!("someone-else")),
            Err("wrong audience".into())
        );
        assert_eq!(with("aud", Value::Null), Err("missing claim aud".into()));
        assert!(with("aud", json!(["other", "switchboard"])).is_ok());
        assert_eq!(with("aud", json!(["other"])), Err("wrong audience".into()));

        // Nothing configured: neither is checked (and an `aud` is no reason to refuse).
        let file = jwks_file(&[signer.jwk(Some("k"))]);
        let open = JwtValidator::from_jwks_file(file.path(), None, None, 0).unwrap();
        let mut claims = good_claims();
        claims["iss"] = "anyone".into();
        claims["aud"] = "anything".into();
        assert!(open.validate(&signer.token(Some("k"), &claims)).is_ok());
    }

    #[test]
    fn wrong_key_and_key_selection() {
        let a = es256();
        let b = es256();
        let c = ed();
        let v = validator(&[a.jwk(Some("a")), b.jwk(Some("b")), c.jwk(None)]);
        // Each by its kid; no kid: every key of the algorithm is tried.
        assert!(v.validate(&a.token(Some("a"), &good_claims())).is_ok());
        assert!(v.validate(&b.token(Some("b"), &good_claims())).is_ok());
        assert!(v.validate(&b.token(None, &good_claims())).is_ok());
        // A kid we do not know falls back to the kid-less key, which must then fit.
        assert!(v.validate(&c.token(Some("zzz"), &good_claims())).is_ok());
        assert_eq!(
            v.validate(&a.token(Some("zzz"), &good_claims())),
            Err("algorithm does not match the key".into())
        );
        // Signed by b, claiming to be a.
        assert_eq!(
            v.validate(&b.token(Some("a"), &good_claims())),
            Err("bad signature".into())
        );
        // A key nobody knows.
        let stranger = es256();
        assert_eq!(
            v.validate(&stranger.token(None, &good_claims())),
            Err("bad signature".into())
        );

        let only_kids = validator(&[a.jwk(Some("a"))]);
        assert_eq!(
            only_kids.validate(&a.token(Some("zzz"), &good_claims())),
            Err("unknown key id".into())
        );
    }

    #[test]
    fn tampered_payload_fails() {
        let signer = es256();
        let v = validator(&[signer.jwk(Some("k"))]);
        let token = signer.token(Some("k"), &good_claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims = good_claims();
        claims["sub"] = "admin".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            BASE64URL.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(v.validate(&forged), Err("bad signature".into()));
        // A signature that is not base64url.
        let broken = format!("{}.{}.@@@", parts[0], parts[1]);
        assert_eq!(v.validate(&broken), Err("malformed token".into()));
    }

    #[test]
    fn algorithm_attacks_fail() {
        let signer = es256();
        let jwk = signer.jwk(Some("k"));
        let v = validator(std::slice::from_ref(&jwk));

        // alg none, any spelling, with or without a signature.
        for alg in ["none", "None", "NONE"] {
            let header = BASE64URL.encode(json!({"alg": alg, "kid": "k"}).to_string());
            let payload = BASE64URL.encode(good_claims().to_string());
            for token in [
                format!("{header}.{payload}."),
                format!("{header}.{payload}.AAAA"),
            ] {
                assert_eq!(
                    v.validate(&token),
                    Err("unsigned token (alg none) refused".into())
                );
            }
        }

        // HS256 with the public key's bytes as the HMAC secret (key confusion).
        let point = match &signer {
            Signer::Es256(pair) => pair.public_key().as_ref().to_vec(),
            _ => unreachable!(),
        };
        let header = BASE64URL.encode(json!({"alg": "HS256", "kid": "k"}).to_string());
        let payload = BASE64URL.encode(good_claims().to_string());
        let input = format!("{header}.{payload}");
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &point),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", BASE64URL.encode(mac.as_ref()));
        assert_eq!(
            v.validate(&token),
            Err("HMAC-signed tokens are not accepted".into())
        );

        // An algorithm of another key type, an algorithm jsonwebtoken does not know.
        let token = signer.token_with("ES256", Some("k"), json!({}), &good_claims());
        let swapped = token.replacen(
            token.split('.').next().unwrap(),
            &BASE64URL.encode(json!({"alg": "EdDSA", "kid": "k"}).to_string()),
            1,
        );
        assert_eq!(
            v.validate(&swapped),
            Err("algorithm does not match the key".into())
        );
        let swapped = token.replacen(
            token.split('.').next().unwrap(),
            &BASE64URL.encode(json!({"alg": "ES512", "kid": "k"}).to_string()),
            1,
        );
        assert_eq!(v.validate(&swapped), Err("unsupported token header".into()));

        // Critical extensions we cannot honour.
        let token = signer.token_with("ES256", Some("k"), json!({"crit": ["exp"]}), &good_claims());
        assert_eq!(
            v.validate(&token),
            Err("unsupported critical header".into())
        );

        // A JWK pinned to one algorithm accepts no other of its family.
        let rsa = rsa();
        let mut pinned = rsa.jwk(Some("r"));
        pinned["alg"] = "PS256".into();
        let v = validator(&[pinned]);
        assert!(
            v.validate(&rsa.token_with("PS256", Some("r"), json!({}), &good_claims()))
                .is_ok()
        );
        assert_eq!(
            v.validate(&rsa.token_with("RS256", Some("r"), json!({}), &good_claims())),
            Err("algorithm does not match the key".into())
        );
    }

    #[test]
    fn malformed_tokens_fail_without_echo() {
        let signer = es256();
        let v = validator(&[signer.jwk(Some("k"))]);
        let good = signer.token(Some("k"), &good_claims());
        let parts: Vec<&str> = good.split('.').collect();
        let not_an_object = format!("{}.{}.{}", parts[0], BASE64URL.encode("[1,2]"), parts[2]);
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "%%%.%%%.%%%",
            &format!("{}.{}", parts[0], parts[1]),
            &format!("{good}.extra"),
            &format!("{}.{}.{}", BASE64URL.encode("not json"), parts[1], parts[2]),
            &format!("{}.{}.{}", BASE64URL.encode("{}"), parts[1], parts[2]),
            &not_an_object,
        ] {
            let err = v.validate(token).unwrap_err();
            assert!(err.len() < 60, "{err}");
            if token.len() > 4 {
                assert!(!err.contains(token), "{err}");
            }
            for part in token.split('.').filter(|p| p.len() > 4) {
                assert!(!err.contains(part), "{err}");
            }
        }
    }

    #[test]
    fn shared_secrets_are_refused() {
        let err = load_err(&[json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"})]);
        assert!(err.contains("oct") && err.contains("\"s\""), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        // Even next to good keys, and even malformed.
        let err = load_err(&[es256().jwk(Some("a")), json!({"kty": "oct"})]);
        assert!(err.contains("oct") && err.contains("key #2"), "{err}");
        // An HMAC alg on a public key.
        let mut jwk = es256().jwk(None);
        jwk["alg"] = "HS256".into();
        assert!(load_err(&[jwk]).contains("HMAC"));
    }

    #[test]
    fn file_errors_name_the_file_and_the_problem() {
        let missing = Path::new("/nonexistent/jwks.json");
        let err = JwtValidator::from_jwks_file(missing, None, None, 0).unwrap_err();
        assert!(
            err.contains("/nonexistent/jwks.json") && err.contains("cannot read"),
            "{err}"
        );

        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(file, "{{\"keys\": 1}}").unwrap();
        let err = JwtValidator::from_jwks_file(file.path(), None, None, 0).unwrap_err();
        assert!(err.contains("not a JSON Web Key Set"), "{err}");

        assert!(load_err(&[]).contains("no keys"));

        // RSA below 2048 bits (a 1024-bit modulus).
        let mut n = vec![0xc5u8; 128];
        n[127] |= 1;
        let weak = json!({"kty": "RSA", "kid": "weak", "n": BASE64URL.encode(&n), "e": "AQAB"});
        let err = load_err(&[weak]);
        assert!(
            err.contains("1024 bits") && err.contains("\"weak\""),
            "{err}"
        );

        // Coordinates that do not fit the curve, bad base64, an alg of another key type.
        let mut short = es256().jwk(None);
        short["x"] = BASE64URL.encode([1u8; 31]).into();
        assert!(load_err(&[short]).contains("malformed EC key"));
        let mut garbled = ed().jwk(None);
        garbled["x"] = "***".into();
        assert!(load_err(&[garbled]).contains("malformed Ed25519 key"));
        let mut mismatched = ed().jwk(Some("m"));
        mismatched["alg"] = "ES256".into();
        assert!(load_err(&[mismatched]).contains("does not fit its key type"));

        // Only keys we skip.
        let enc = json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"});
        let p521 = json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"});
        let x25519 = json!({"kty": "OKP", "crv": "X25519", "x": "AA"});
        let err = load_err(&[enc, p521, x25519]);
        assert!(err.contains("no usable signature key"), "{err}");
        assert!(err.contains("P-521") && err.contains("enc"), "{err}");
    }

    #[test]
    fn unsupported_keys_are_skipped_next_to_good_ones() {
        let signer = ed();
        let v = validator(&[
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "EC", "kid": "big", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "kid": "x", "crv": "X25519", "x": "AA"}),
            signer.jwk(Some("ed")),
        ]);
        assert_eq!(v.keys.len(), 1);
        assert!(
            v.validate(&signer.token(Some("ed"), &good_claims()))
                .is_ok()
        );
        assert_eq!(
            v.validate(&signer.token(Some("big"), &good_claims())),
            Err("unknown key id".into())
        );
    }

    #[test]
    fn provider_digest_serves_jwk_thumbprints() {
        install_provider();
        let jwk: Jwk = serde_json::from_value(es256().jwk(None)).unwrap();
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        assert_eq!(BASE64URL.decode(thumbprint).unwrap().len(), 32);
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[1]), 1);
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0xff; 256]), 2048);
    }
}
