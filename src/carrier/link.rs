//! The link to an SMSC: TCP (with TCP_NODELAY), optional TLS, the frame codec, the bind
//! handshake for one session kind, and then reading and writing apart. Writes go through a
//! task of their own, every batch bounded by `write_timeout`, so an SMSC that stops reading can
//! never hold the session's timers: the session hands PDUs to the writer without waiting and
//! learns of a stalled or broken write as a [`LinkError`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::status::status_name;
use smpp_wire::{Frame, FrameCodec};
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};
use tracing::{debug, warn};

use super::pdu::{self, BindKind};
use super::tls::TlsClient;
use crate::config::CarrierConfig;

/// A plain or TLS stream to the SMSC.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Reader = FramedRead<ReadHalf<Box<dyn Io>>, FrameCodec>;
type Sink = FramedWrite<WriteHalf<Box<dyn Io>>, FrameCodec>;

/// Why a bound link ended. Counted in `otpgate_smpp_link_lost_total{reason}`.
#[derive(Debug, thiserror::Error)]
pub(super) enum LinkError {
    #[error("connection closed by the SMSC")]
    Closed,
    #[error("read failed: {0}")]
    Read(String),
    #[error("write failed: {0}")]
    Write(std::io::ErrorKind),
    /// A write or flush made no progress within `write_timeout`: the SMSC stopped reading.
    #[error("the SMSC stopped reading: a write waited longer than {0:?}")]
    WriteStalled(Duration),
    #[error("enquire_link unanswered")]
    EnquireLinkUnanswered,
    #[error("{0} submit_sm unanswered in time on this link")]
    ResponseTimeouts(u32),
    #[error("the SMSC unbound")]
    Unbound,
    /// The writer task is gone; why is its own outcome (see `WriterTask::failed`).
    #[error("the writer stopped")]
    WriterGone,
}

impl LinkError {
    /// The metric label.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            LinkError::Closed => "closed",
            LinkError::Read(_) => "read_error",
            LinkError::Write(_) => "write_error",
            LinkError::WriteStalled(_) => "write_stalled",
            LinkError::EnquireLinkUnanswered => "enquire_link_unanswered",
            LinkError::ResponseTimeouts(_) => "response_timeouts",
            LinkError::Unbound => "unbound",
            LinkError::WriterGone => "write_error",
        }
    }
}

/// What the SMSC sent, as the session needs it: responses settled by sequence number (a body
/// that does not decode is read by its header, never answered), requests to answer, and the
/// end of the link.
// An event is moved once, from the reader to its handler; boxing the large variant would add
// an allocation per PDU on the hot path (as for `smpp_wire::Frame`).
#[allow(clippy::large_enum_variant)]
pub(super) enum Event {
    /// A submit_sm_resp or a generic_nack. `malformed` says why the body did not decode, when
    /// it did not (the header's status and a leniently read id decide then).
    SubmitResponse {
        seq: u32,
        status: CommandStatus,
        message_id: String,
        malformed: Option<String>,
    },
    EnquireLinkResponse {
        seq: u32,
        malformed: Option<String>,
    },
    /// Any other response (unbind_resp, a late bind_resp): nothing to settle.
    OtherResponse {
        command_id: CommandId,
        malformed: Option<String>,
    },
    /// A request that decoded: enquire_link, deliver_sm, data_sm, unbind, alert_notification...
    Request(Command),
    /// A request whose body does not decode, and the status its refusal carries.
    MalformedRequest {
        command_id: CommandId,
        seq: u32,
        status: CommandStatus,
        error: String,
    },
    Lost(LinkError),
}

/// The next event on the link.
pub(super) async fn next_event(reader: &mut Reader) -> Event {
    match reader.next().await {
        None => Event::Lost(LinkError::Closed),
        Some(Err(err)) => Event::Lost(LinkError::Read(err.to_string())),
        Some(Ok(Frame::Command(command))) => match command.id() {
            CommandId::SubmitSmResp | CommandId::GenericNack => Event::SubmitResponse {
                seq: command.sequence_number(),
                status: command.status(),
                message_id: match command.pdu() {
                    Some(Pdu::SubmitSmResp(body)) => body.message_id().as_str().to_owned(),
                    _ => String::new(),
                },
                malformed: None,
            },
            CommandId::EnquireLinkResp => Event::EnquireLinkResponse {
                seq: command.sequence_number(),
                malformed: None,
            },
            id if is_response(id) => Event::OtherResponse {
                command_id: id,
                malformed: None,
            },
            _ => Event::Request(command),
        },
        Some(Ok(Frame::Malformed {
            command_id,
            command_status,
            sequence_number: seq,
            message_id,
            nack_status,
            error,
        })) => {
            let malformed = Some(error.to_string());
            match command_id {
                CommandId::SubmitSmResp | CommandId::GenericNack => Event::SubmitResponse {
                    seq,
                    status: command_status,
                    message_id: message_id.unwrap_or_default(),
                    malformed,
                },
                CommandId::EnquireLinkResp => Event::EnquireLinkResponse { seq, malformed },
                id if is_response(id) => Event::OtherResponse {
                    command_id: id,
                    malformed,
                },
                _ => Event::MalformedRequest {
                    command_id,
                    seq,
                    status: nack_status,
                    error: error.to_string(),
                },
            }
        }
    }
}

fn is_response(id: CommandId) -> bool {
    u32::from(id) & 0x8000_0000 != 0
}

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

/// Each bound link gets a number of its own, so a part that went unanswered on one link is
/// resent only on another.
static LINK_IDS: AtomicU64 = AtomicU64::new(1);

/// The write side of a bound link: PDUs are queued without waiting.
pub(super) struct Writer {
    tx: mpsc::Sender<Command>,
    timeout: Duration,
}

/// The writer task; it reports how it ended.
pub(super) struct WriterTask {
    done: JoinHandle<Result<(), LinkError>>,
}

impl Writer {
    /// Whether a PDU can be queued now. The session reads and fills its window only while it
    /// can: a writer that falls behind slows the reading down (back-pressure), and only a write
    /// that makes no progress for `write_timeout` ends the link.
    pub(super) fn has_room(&self) -> bool {
        self.tx.capacity() > 0
    }

    /// Resolves once a PDU can be queued again (or the writer is gone: `failed` says why).
    pub(super) async fn room(&self) {
        // The permit is dropped at once: only the wait matters.
        let _ = self.tx.reserve().await;
    }

    /// Queues `command` for the wire. The session checks `has_room` first; a queue found full
    /// anyway is taken as a stall.
    pub(super) fn send(&self, command: Command) -> Result<(), LinkError> {
        self.tx.try_send(command).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => LinkError::WriteStalled(self.timeout),
            mpsc::error::TrySendError::Closed(_) => LinkError::WriterGone,
        })
    }
}

impl WriterTask {
    /// Resolves when the writer stops: a stall or a write error.
    pub(super) async fn failed(&mut self) -> LinkError {
        match (&mut self.done).await {
            Ok(Err(err)) => err,
            Ok(Ok(())) => LinkError::Write(std::io::ErrorKind::BrokenPipe),
            Err(_) => LinkError::Write(std::io::ErrorKind::Other),
        }
    }
}

impl Drop for WriterTask {
    fn drop(&mut self) {
        self.done.abort();
    }
}

/// A bound link.
pub(super) struct Link {
    pub(super) id: u64,
    pub(super) reader: Reader,
    pub(super) writer: Writer,
    pub(super) writer_task: WriterTask,
}

/// Writes queued PDUs in batches (feed all that are queued, then one flush: one syscall for a
/// window), each batch bounded by `timeout`.
async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Command>,
    timeout: Duration,
) -> Result<(), LinkError> {
    const BATCH: usize = 256;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let write = async {
            for command in &batch {
                sink.feed(command).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Err(_) => return Err(LinkError::WriteStalled(timeout)),
            Ok(Err(err)) => return Err(LinkError::Write(err.kind())),
            Ok(Ok(())) => batch.clear(),
        }
    }
    // The session closed the queue (unbind): end the write side cleanly, bounded too.
    let _ = tokio::time::timeout(timeout, sink.close()).await;
    Ok(())
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
    let (read, write) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, FrameCodec::new(config.max_pdu_length));
    let mut sink = FramedWrite::new(write, FrameCodec::new(config.max_pdu_length));
    let bind = Command::new(CommandStatus::EsmeRok, 1, pdu::bind(config, kind)?);
    let expected = kind.response_id();
    let handshake = async {
        sink.send(&bind)
            .await
            .map_err(|err| BindError::Link(err.to_string()))?;
        loop {
            match reader.next().await {
                None => return Err(BindError::Closed),
                Some(Err(err)) => return Err(BindError::Link(err.to_string())),
                Some(Ok(Frame::Command(command))) => match command.id() {
                    id if (id == expected || id == CommandId::GenericNack)
                        && command.sequence_number() == 1 =>
                    {
                        return bound(command.status());
                    }
                    // An SMSC may probe before answering; keep the link polite.
                    CommandId::EnquireLink => {
                        let resp = Command::new(
                            CommandStatus::EsmeRok,
                            command.sequence_number(),
                            Pdu::EnquireLinkResp,
                        );
                        sink.send(&resp)
                            .await
                            .map_err(|err| BindError::Link(err.to_string()))?;
                    }
                    _ => {
                        debug!(session = %label, id = ?command.id(), "PDU ignored while binding")
                    }
                },
                // Real SMSCs exceed the spec's limits (a system_id over 16 octets): the header
                // says whether the bind succeeded, and that is all the client needs.
                Some(Ok(Frame::Malformed {
                    command_id,
                    sequence_number: 1,
                    command_status,
                    error,
                    ..
                })) if command_id == expected || command_id == CommandId::GenericNack => {
                    warn!(session = %label, %error, "bind response body does not decode; its header decides");
                    metrics::counter!(crate::metrics::SMPP_LENIENT_TOTAL, crate::metrics::LABEL_CARRIER => config.name.clone(), crate::metrics::LABEL_WHAT => "bind_resp")
                        .increment(1);
                    return bound(command_status);
                }
                Some(Ok(Frame::Malformed { command_id, .. })) => {
                    debug!(session = %label, ?command_id, "malformed PDU ignored while binding")
                }
            }
        }
    };
    tokio::time::timeout(config.bind_timeout, handshake)
        .await
        .map_err(|_| BindError::BindTimeout)??;
    let (tx, rx) = mpsc::channel(config.window + 256);
    let done = tokio::spawn(write_loop(sink, rx, config.write_timeout));
    Ok(Link {
        id: LINK_IDS.fetch_add(1, Ordering::Relaxed),
        reader,
        writer: Writer {
            tx,
            timeout: config.write_timeout,
        },
        writer_task: WriterTask { done },
    })
}

fn bound(status: CommandStatus) -> Result<(), BindError> {
    if status == CommandStatus::EsmeRok {
        Ok(())
    } else {
        Err(BindError::Rejected(status_name(status)))
    }
}
