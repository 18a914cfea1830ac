//! The SMPP side: accept loop and one task per ESME session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, SubmitSm, SubmitSmResp,
};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use smpp_wire::{Frame, FrameCodec};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::otp::find_code;
use crate::stats::Stats;
use crate::store::StoredMessage;
use crate::text;

/// Accepts ESME connections until `shutdown`; each session runs on `tracker`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let session = Session::new(shared.clone(), peer);
                    tracker.spawn(session.run(stream, shutdown.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindType {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindType {
    fn may_submit(self) -> bool {
        matches!(self, BindType::Transmitter | BindType::Transceiver)
    }
}

struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    bound: Option<(BindType, String)>,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        Self {
            shared,
            peer,
            bound: None,
        }
    }

    async fn run(mut self, stream: TcpStream, shutdown: CancellationToken) {
        if let Err(err) = stream.set_nodelay(true) {
            warn!(peer = %self.peer, %err, "cannot set TCP_NODELAY");
        }
        self.shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let mut link = Framed::new(
            stream,
            FrameCodec::new(self.shared.config.smpp.max_pdu_length),
        );
        let reason = loop {
            tokio::select! {
                frame = link.next() => match frame {
                    None => break "closed by the ESME".to_owned(),
                    Some(Err(err)) => break format!("{err}"),
                    Some(Ok(frame)) => match self.on_frame(frame) {
                        Reply::None => {}
                        Reply::Send(command) => {
                            if let Err(err) = link.send(&command).await {
                                break format!("write failed: {err}");
                            }
                        }
                        Reply::SendAndClose(command) => {
                            let _ = link.send(&command).await;
                            break "unbound".to_owned();
                        }
                    },
                },
                _ = shutdown.cancelled() => break "simulator stopping".to_owned(),
            }
        };
        self.shared.stats.sessions.fetch_sub(1, Ordering::Relaxed);
        info!(peer = %self.peer, %reason, "session ended");
    }

    fn on_frame(&mut self, frame: Frame) -> Reply {
        match frame {
            Frame::Malformed {
                command_id,
                sequence_number,
                nack_status,
                error,
            } => {
                warn!(peer = %self.peer, ?command_id, %error, "malformed PDU answered with generic_nack");
                Stats::add(&self.shared.stats.generic_nacks);
                Reply::Send(Command::new(nack_status, sequence_number, Pdu::GenericNack))
            }
            Frame::Command(command) => self.on_command(command),
        }
    }

    fn on_command(&mut self, command: Command) -> Reply {
        let seq = command.sequence_number();
        let id = command.id();
        match command.pdu() {
            Some(Pdu::BindTransmitter(bind)) => self.on_bind(
                BindType::Transmitter,
                seq,
                bind.system_id.as_str(),
                bind.password.as_str(),
                bind.interface_version,
            ),
            Some(Pdu::BindReceiver(bind)) => self.on_bind(
                BindType::Receiver,
                seq,
                bind.system_id.as_str(),
                bind.password.as_str(),
                bind.interface_version,
            ),
            Some(Pdu::BindTransceiver(bind)) => self.on_bind(
                BindType::Transceiver,
                seq,
                bind.system_id.as_str(),
                bind.password.as_str(),
                bind.interface_version,
            ),
            Some(Pdu::SubmitSm(submit)) => self.on_submit(seq, submit),
            Some(Pdu::EnquireLink) => Reply::Send(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::EnquireLinkResp,
            )),
            Some(Pdu::Unbind) => {
                Stats::add(&self.shared.stats.unbinds);
                Reply::SendAndClose(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
            }
            // Responses to what we sent need no answer.
            _ if u32::from(id) & 0x8000_0000 != 0 => Reply::None,
            _ => {
                debug!(peer = %self.peer, ?id, "unsupported command answered with generic_nack");
                Stats::add(&self.shared.stats.generic_nacks);
                Reply::Send(Command::new(
                    CommandStatus::EsmeRinvcmdid,
                    seq,
                    Pdu::GenericNack,
                ))
            }
        }
    }

    fn on_bind(
        &mut self,
        kind: BindType,
        seq: u32,
        system_id: &str,
        password: &str,
        version: InterfaceVersion,
    ) -> Reply {
        let status = if self.bound.is_some() {
            CommandStatus::EsmeRalybnd
        } else {
            match self.shared.config.account(system_id) {
                None => CommandStatus::EsmeRinvsysid,
                Some(account) if account.password != password => CommandStatus::EsmeRinvpaswd,
                Some(_) => CommandStatus::EsmeRok,
            }
        };
        if status == CommandStatus::EsmeRok {
            Stats::add(&self.shared.stats.binds);
            self.bound = Some((kind, system_id.to_owned()));
            info!(peer = %self.peer, system_id, ?kind, "bound");
        } else {
            Stats::add(&self.shared.stats.bind_failures);
            warn!(peer = %self.peer, system_id, ?status, "bind refused");
        }
        // Config validation guarantees an ASCII system_id of at most 15 characters.
        let our_id: COctetString<1, 16> = self
            .shared
            .config
            .smpp
            .system_id
            .parse()
            .unwrap_or_default();
        let version = match version {
            InterfaceVersion::Smpp5_0 => InterfaceVersion::Smpp5_0,
            _ => InterfaceVersion::Smpp3_4,
        };
        let pdu: Pdu = match kind {
            BindType::Transmitter => BindTransmitterResp::new(our_id, Some(version)).into(),
            BindType::Receiver => BindReceiverResp::new(our_id, Some(version)).into(),
            BindType::Transceiver => BindTransceiverResp::new(our_id, Some(version)).into(),
        };
        Reply::Send(Command::new(status, seq, pdu))
    }

    fn on_submit(&mut self, seq: u32, submit: &SubmitSm) -> Reply {
        let account = match &self.bound {
            Some((kind, account)) if kind.may_submit() => account.clone(),
            _ => {
                return Reply::Send(Command::new(
                    CommandStatus::EsmeRinvbndsts,
                    seq,
                    SubmitSmResp::default(),
                ));
            }
        };
        let data_coding = u8::from(submit.data_coding);
        let text = text::decode(data_coding, submit.short_message().as_ref());
        let to = submit.destination_addr.as_str();
        let to = if submit.dest_addr_ton == Ton::International {
            format!("+{to}")
        } else {
            to.to_owned()
        };
        let message_id = self.shared.store.next_id();
        let message = StoredMessage {
            id: message_id.clone(),
            from: submit.source_addr.as_str().to_owned(),
            to,
            otp: find_code(&text),
            text,
            received_at: crate::clock::rfc3339(SystemTime::now()),
            account,
            data_coding,
            registered_delivery: u8::from(submit.registered_delivery),
        };
        self.shared.store.push(message);
        Stats::add(&self.shared.stats.submits);
        // A hex id of a u64 is ASCII and short: the parse cannot fail.
        let message_id: COctetString<1, 65> = message_id.parse().unwrap_or_default();
        Reply::Send(Command::new(
            CommandStatus::EsmeRok,
            seq,
            SubmitSmResp::new(message_id, Vec::new()),
        ))
    }
}

enum Reply {
    None,
    Send(Command),
    SendAndClose(Command),
}
