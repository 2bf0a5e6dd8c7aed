//! TLS Internals: the control plane's own certificate authority. With the flag on, a
//! server's node gets a certificate from it (for [`node_name`]) on a control listener of
//! its own, and the control plane's health probe (the OPTIONS ping behind the SIP latency)
//! goes there over TLS, trusting this authority and nothing else: a probe answered by
//! anything but that node fails.
//!
//! On one machine the control plane configures its nodes in-process; the probe is the
//! control traffic that crosses the network, so it is what TLS Internals protects. The
//! authority lives as long as the process: at a restart a new one is made and every node
//! is given a new certificate when it is restored.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sip_engine::TlsSpec;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The name a node's control certificate is issued for (never resolved: the probe
/// connects by address and checks this name).
pub fn node_name(server_id: i64) -> String {
    format!("node-{server_id}.sipfleet.internal")
}

pub struct InternalAuthority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// A TLS client that trusts only this authority.
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for InternalAuthority {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalAuthority")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("internal certificate: {0}")]
pub struct AuthorityError(#[from] rcgen::Error);

impl InternalAuthority {
    pub fn new() -> Result<Self, AuthorityError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sipfleet internal authority");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(issuer.der().to_vec()))
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|_| rcgen::Error::CouldNotParseCertificate)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(InternalAuthority {
            issuer,
            client: Arc::new(client),
        })
    }

    /// A certificate and key for server `server_id`'s control listener.
    pub fn issue(&self, server_id: i64) -> Result<TlsSpec, AuthorityError> {
        let key = KeyPair::generate()?;
        let cert =
            CertificateParams::new(vec![node_name(server_id)])?.signed_by(&key, &self.issuer)?;
        Ok(TlsSpec {
            port: 0,
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    pub fn client(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}
