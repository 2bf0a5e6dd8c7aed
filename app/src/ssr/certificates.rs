//! TLS certificates: an upload is checked with real X.509 parsing (x509-parser) and a real
//! key (rcgen over ring): the key must be the leaf certificate's, and the leaf must be valid
//! now. Uploading, deleting, attaching and detaching are each written with their audit row;
//! a server whose certificates changed then serves (or stops serving) SIP over TLS.

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use super::state::AppState;
use super::store::{AccountId, Audit, SessionUser};
use crate::error::AppError;

/// What the console shows of a certificate (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub subject: String,
    pub sans: Vec<String>,
    pub issuer: String,
    pub not_after: i64,
}

/// Parses the chain (leaf first) and the key; refuses a mismatched key, an expired or
/// not-yet-valid leaf, and anything that is not PEM.
pub fn inspect(chain_pem: &str, key_pem: &str, now: i64) -> Result<CertificateFacts, AppError> {
    let chain = || {
        AppError::field(
            "chain",
            "Paste the certificate chain in PEM, the server's certificate first.",
        )
    };
    let mut blocks = Vec::new();
    for pem in Pem::iter_from_buffer(chain_pem.as_bytes()) {
        let pem = pem.map_err(|_| chain())?;
        if pem.label == "CERTIFICATE" {
            blocks.push(pem);
        }
    }
    let leaf_pem = blocks.first().ok_or_else(chain)?;
    let leaf = leaf_pem.parse_x509().map_err(|_| chain())?;
    for other in &blocks[1..] {
        other.parse_x509().map_err(|_| chain())?;
    }
    let validity = leaf.validity();
    if validity.not_after.timestamp() <= now {
        return Err(AppError::field(
            "chain",
            format!("This certificate expired on {}.", validity.not_after),
        ));
    }
    if validity.not_before.timestamp() > now {
        return Err(AppError::field(
            "chain",
            format!(
                "This certificate is not valid before {}.",
                validity.not_before
            ),
        ));
    }
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|_| {
        AppError::field(
            "key",
            "Paste the private key in PEM (PKCS#8: BEGIN PRIVATE KEY).",
        )
    })?;
    if key.public_key_raw() != &*leaf.public_key().subject_public_key.data {
        return Err(AppError::field(
            "key",
            "This private key does not belong to the certificate.",
        ));
    }
    let sans = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_string()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => Some(
                            std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])
                                .to_string(),
                        ),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertificateFacts {
        subject: leaf.subject().to_string(),
        sans,
        issuer: leaf.issuer().to_string(),
        not_after: validity.not_after.timestamp(),
    })
}

/// Checks and stores a certificate chain with its key in the user's account; returns its
/// id.
pub async fn upload(
    state: &AppState,
    user: &SessionUser,
    chain_pem: &str,
    key_pem: &str,
) -> Result<i64, AppError> {
    let facts = inspect(chain_pem, key_pem, super::now())?;
    Ok(state
        .store
        .insert_certificate(user.account_id, chain_pem, key_pem, &facts, |id| {
            Audit::by(
                user,
                "certificate.upload",
                format!("certificate {id}"),
                &facts.subject,
            )
        })
        .await?)
}

/// Deletes one of the account's certificates; the servers it was attached to lose it.
pub async fn delete(state: &AppState, user: &SessionUser, id: i64) -> Result<(), AppError> {
    let servers = state
        .store
        .servers_with_certificate(user.account_id, id)
        .await?;
    let audit = Audit::by(user, "certificate.delete", format!("certificate {id}"), "");
    if !state
        .store
        .delete_certificate(user.account_id, id, audit)
        .await?
    {
        return Err(AppError::NotFound);
    }
    for server_id in servers {
        tls_follows(state, user.account_id, server_id).await?;
    }
    Ok(())
}

/// Attaches one of the account's certificates to one of its servers as `usage` (`server`
/// or `client`), or changes the usage it is attached with.
pub async fn attach(
    state: &AppState,
    user: &SessionUser,
    server_id: i64,
    certificate_id: i64,
    usage: &str,
) -> Result<(), AppError> {
    let audit = Audit::by(
        user,
        "certificate.attach",
        format!("server {server_id}"),
        format!("certificate {certificate_id} as {usage}"),
    );
    if !state
        .store
        .attach_certificate(user.account_id, server_id, certificate_id, usage, audit)
        .await?
    {
        return Err(AppError::NotFound);
    }
    // A Server certificate may be what WebRTC/TLS was waiting for.
    tls_follows(state, user.account_id, server_id).await
}

/// Detaches a certificate from one of the account's servers.
pub async fn detach(
    state: &AppState,
    user: &SessionUser,
    server_id: i64,
    certificate_id: i64,
) -> Result<(), AppError> {
    let audit = Audit::by(
        user,
        "certificate.detach",
        format!("server {server_id}"),
        format!("certificate {certificate_id}"),
    );
    if !state
        .store
        .detach_certificate(user.account_id, server_id, certificate_id, audit)
        .await?
    {
        return Err(AppError::NotFound);
    }
    tls_follows(state, user.account_id, server_id).await
}

/// Serves (or stops serving) SIP over TLS on a server after its certificates changed.
async fn tls_follows(
    state: &AppState,
    account_id: AccountId,
    server_id: i64,
) -> Result<(), AppError> {
    let Some(record) = state.store.server_config(account_id, server_id).await? else {
        return Ok(());
    };
    super::config::apply_tls(state, server_id, &record).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(days_from_now: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["sip.example.com".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        let end = time::OffsetDateTime::now_utc() + time::Duration::days(days_from_now);
        params.not_after = end;
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_matching_pair_is_read_with_its_names() {
        let (chain, key) = pair(90);
        let facts = inspect(&chain, &key, now()).unwrap();
        assert_eq!(facts.sans, vec!["sip.example.com".to_string()]);
        assert!(facts.not_after > now());
    }

    #[test]
    fn a_foreign_key_an_expired_leaf_and_garbage_are_refused_by_field() {
        let (chain, _) = pair(90);
        let (_, other_key) = pair(90);
        assert!(inspect(&chain, &other_key, now())
            .unwrap_err()
            .for_field("key")
            .is_some());
        let (old, old_key) = pair(-1);
        assert!(inspect(&old, &old_key, now())
            .unwrap_err()
            .for_field("chain")
            .unwrap()
            .contains("expired"));
        assert!(inspect("hello", &other_key, now())
            .unwrap_err()
            .for_field("chain")
            .is_some());
        assert!(inspect(
            &chain,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            now()
        )
        .unwrap_err()
        .for_field("key")
        .is_some());
    }
}
