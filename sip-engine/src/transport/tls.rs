//! SIP over TLS (RFC 3261 §26.2): the TCP transport's framing on a TLS stream, with the
//! certificate chain and key the control plane attached to the server.
//!
//! The same port serves SIP over secure WebSocket (see [`serve_secure`]). Messages arriving
//! over TLS are stream messages ([`Transport::Tls`]): answers go back on the same
//! connection, and nothing is retransmitted. Only TLS 1.2 and 1.3 are
//! offered (rustls's defaults), with ring as the crypto provider.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tcp::{serve_stream, Framer};
use super::ws;
use super::{Inbound, Transport};

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate chain and key cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the certificate chain holds no PEM certificate")]
    NoCertificate,
    #[error("the certificate chain cannot be read: {0}")]
    Chain(rustls_pki_types::pem::Error),
    #[error("the private key cannot be read: {0}")]
    Key(rustls_pki_types::pem::Error),
    #[error("the key does not fit the certificate: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

/// A TLS acceptor for a PEM chain (leaf first) and its PEM private key.
pub fn acceptor(chain_pem: &str, key_pem: &str) -> Result<TlsAcceptor, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Chain)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(TlsError::Key)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections until `shutdown` is cancelled; each one is served by its own
/// task once its handshake is done.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    node: Arc<dyn Inbound>,
    shutdown: CancellationToken,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "tls accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, node, shutdown) = (acceptor.clone(), node.clone(), shutdown.child_token());
        tokio::spawn(async move {
            let connection = async {
                let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                serve_secure(stream, peer, node).await
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "tls connection ended");
                    }
                }
            }
        });
    }
}

/// Serves a connection whose handshake is done: a secure WebSocket (RFC 7118) when it opens
/// with an HTTP GET, which no SIP message starts with, else SIP over TLS. Sharing the TLS
/// port means WebRTC clients need no port of their own opened in firewalls, and no SIP
/// client is affected.
async fn serve_secure<S>(
    mut stream: S,
    peer: SocketAddr,
    node: Arc<dyn Inbound>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framer = Framer::default();
    // Enough of the first bytes to tell the two apart (a CRLF ping may come first on SIP).
    while framer.buffer_mut().len() < 4 {
        let read = tokio::time::timeout(
            super::tcp::IDLE_TIMEOUT,
            stream.read_buf(framer.buffer_mut()),
        )
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if read == 0 {
            return Ok(());
        }
    }
    if framer.buffer_mut().starts_with(b"GET ") {
        let opening = framer.buffer_mut().split().freeze();
        ws::serve(ws::Rewind::new(opening, stream), peer, Transport::Wss, node).await
    } else {
        serve_stream(stream, peer, Transport::Tls, node, framer).await
    }
}
