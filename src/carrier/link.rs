//! Opening a link to the SMSC: TCP (with TCP_NODELAY), optional TLS, the frame codec, and the
//! bind handshake for one session kind.

use futures_util::{SinkExt, StreamExt};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::status::status_name;
use smpp_wire::{Frame, FrameCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tracing::debug;

use super::pdu::{self, BindKind};
use super::tls::TlsClient;
use crate::config::CarrierConfig;

/// A plain or TLS stream to the SMSC.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(super) type Link = Framed<Box<dyn Io>, FrameCodec>;

/// Why a connect or bind attempt failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum BindError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("bind rejected with {0}")]
    Rejected(String),
    #[error("no bind response in time")]
    BindTimeout,
    #[error("link closed during bind")]
    Closed,
    #[error("link error during bind: {0}")]
    Link(String),
    #[error(transparent)]
    Config(#[from] pdu::PduError),
}

/// Connects to the carrier's SMSC and binds as `kind`; `label` names the session in logs.
pub(super) async fn connect_and_bind(
    config: &CarrierConfig,
    tls: Option<&TlsClient>,
    kind: BindKind,
    label: &str,
) -> Result<Link, BindError> {
    let address = (config.host.as_str(), config.port);
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| BindError::ConnectTimeout)?
        .map_err(BindError::Connect)?;
    // Without TCP_NODELAY small PDUs wait ~40 ms on Nagle + delayed ACK.
    stream.set_nodelay(true).map_err(BindError::Connect)?;
    let stream: Box<dyn Io> = match tls {
        None => Box::new(stream),
        Some(tls) => {
            let handshake = tls.connector.connect(tls.server_name.clone(), stream);
            let stream = tokio::time::timeout(config.connect_timeout, handshake)
                .await
                .map_err(|_| BindError::ConnectTimeout)?
                .map_err(|err| BindError::Tls(err.to_string()))?;
            Box::new(stream)
        }
    };
    let mut link = Framed::new(stream, FrameCodec::new(config.max_pdu_length));
    let bind = Command::new(CommandStatus::EsmeRok, 1, pdu::bind(config, kind)?);
    link.send(&bind)
        .await
        .map_err(|err| BindError::Link(err.to_string()))?;
    let expected = kind.response_id();
    let answer = async {
        loop {
            match link.next().await {
                None => return Err(BindError::Closed),
                Some(Err(err)) => return Err(BindError::Link(err.to_string())),
                Some(Ok(Frame::Command(command))) => match command.id() {
                    id if (id == expected || id == CommandId::GenericNack)
                        && command.sequence_number() == 1 =>
                    {
                        return if command.status() == CommandStatus::EsmeRok {
                            Ok(())
                        } else {
                            Err(BindError::Rejected(status_name(command.status())))
                        };
                    }
                    // An SMSC may probe before answering; keep the link polite.
                    CommandId::EnquireLink => {
                        let resp = Command::new(
                            CommandStatus::EsmeRok,
                            command.sequence_number(),
                            Pdu::EnquireLinkResp,
                        );
                        link.send(&resp)
                            .await
                            .map_err(|err| BindError::Link(err.to_string()))?;
                    }
                    _ => {
                        debug!(session = %label, id = ?command.id(), "PDU ignored while binding")
                    }
                },
                Some(Ok(Frame::Malformed { .. })) => {
                    return Err(BindError::Link("malformed bind response".into()));
                }
            }
        }
    };
    tokio::time::timeout(config.bind_timeout, answer)
        .await
        .map_err(|_| BindError::BindTimeout)??;
    Ok(link)
}
