//! HTTPS for what reaches troupe from beyond this machine (`--tls-cert`, `--tls-key`), with
//! rustls. troupe's own instances keep calling back over plain HTTP on loopback, which never
//! leaves the machine and needs no certificate they would have to trust.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// How long a client may take over its handshake before it is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The acceptor for a certificate chain and its private key, both PEM; each failure names the
/// file and what is wrong with it.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use pki_types::pem::PemObject;
    let chain: Vec<pki_types::CertificateDer<'static>> =
        pki_types::CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| anyhow::anyhow!("--tls-cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "--tls-cert {}: no certificate in it (a PEM file with BEGIN CERTIFICATE)",
            cert.display()
        );
    }
    let private = pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "--tls-key {}: {e} (a PEM file with the certificate's private key)",
            key.display()
        )
    })?;
    // ring builds with nothing but a C compiler (aws-lc-rs, rustls' preferred provider, wants
    // more of the machine); it lacks only the post-quantum key exchanges, hence the notice.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            anyhow::anyhow!(
                "--tls-cert {} and --tls-key {} do not make a usable pair: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connection: TLS, or plain HTTP from this machine.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// What a connection's first byte says it is. A TLS handshake opens with a record of type 22;
/// an HTTP request with a method's first letter.
fn is_tls(first: u8) -> bool {
    first == 0x16
}

/// What becomes of a new connection.
#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Tls,
    Plain,
    /// Plain HTTP from another machine: the token would cross the network readable.
    Refuse,
}

fn admit(first: u8, from_loopback: bool) -> Admit {
    match (is_tls(first), from_loopback) {
        (true, _) => Admit::Tls,
        (false, true) => Admit::Plain,
        (false, false) => Admit::Refuse,
    }
}

/// A listener that takes TLS from anyone and plain HTTP only from loopback, on one port: a
/// person's client on another machine gets HTTPS, while troupe's instances and the command
/// line on this machine go on as before. Handshakes run apart from the accept loop, so a slow
/// or silent client holds up nobody else.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(Conn, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        // Out of file descriptors and the like: a pause rather than a spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let opened = tokio::time::timeout(HANDSHAKE, async {
                        let mut first = [0u8; 1];
                        if stream.peek(&mut first).await? == 0 {
                            return Ok(None);
                        }
                        match admit(first[0], peer.ip().is_loopback()) {
                            Admit::Tls => {
                                let tls = acceptor.accept(stream).await?;
                                Ok(Some(Conn::Tls(Box::new(tls))))
                            }
                            Admit::Plain => Ok(Some(Conn::Plain(stream))),
                            Admit::Refuse => {
                                tracing::debug!(%peer, "plain HTTP from beyond this machine refused: HTTPS only");
                                Ok::<_, std::io::Error>(None)
                            }
                        }
                    })
                    .await;
                    match opened {
                        Ok(Ok(Some(conn))) => {
                            let _ = tx.send((conn, peer)).await;
                        }
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "the client said nothing for 10 s"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_is_told_from_a_request_by_its_first_byte() {
        assert!(is_tls(0x16));
        for request in ["GET / HTTP/1.1", "POST /mcp HTTP/1.1", "PRI * HTTP/2.0"] {
            assert!(!is_tls(request.as_bytes()[0]), "{request}");
        }
    }

    #[test]
    fn plain_http_is_taken_only_from_this_machine() {
        assert_eq!(admit(0x16, false), Admit::Tls);
        assert_eq!(admit(0x16, true), Admit::Tls);
        assert_eq!(admit(b'G', true), Admit::Plain);
        assert_eq!(admit(b'P', false), Admit::Refuse);
    }

    #[test]
    fn unreadable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let e = acceptor(&cert, &key).err().unwrap().to_string();
        assert!(e.starts_with("--tls-cert "), "{e}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let e = acceptor(&cert, &key).err().unwrap().to_string();
        assert!(e.contains("no certificate in it"), "{e}");
    }
}
