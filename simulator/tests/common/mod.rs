//! Helpers for driving the simulator over real sockets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter, DeliverSm, SubmitSm};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use serde_json::Value;
use smpp_wire::{Frame, FrameCodec};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

pub mod promtool;

pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Sim {
    pub smpp: SocketAddr,
    pub http: String,
    pub shutdown: CancellationToken,
    pub client: reqwest::Client,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a simulator with account `tester`/`pw` plus whatever `extra` TOML adds.
pub async fn start_with(extra: &str) -> Sim {
    start_with_smpp("", extra).await
}

/// Like [`start_with`], with `smpp_extra` lines in the `[smpp]` section (`lenient = true`).
pub async fn start_with_smpp(smpp_extra: &str, extra: &str) -> Sim {
    let smpp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (smpp_addr, http_addr) = (
        smpp.local_addr().expect("addr"),
        http.local_addr().expect("addr"),
    );
    let text = format!(
        "[smpp]\nlisten = \"{smpp_addr}\"\nmax_pdu_length = 4096\n{smpp_extra}\n[http]\nlisten = \"{http_addr}\"\n{extra}\n\
         [[accounts]]\nsystem_id = \"tester\"\npassword = \"pw\"\n"
    );
    let config = smsc_sim::Config::from_toml(&text, std::path::Path::new("t.toml"))
        .expect("valid test config");
    let shutdown = CancellationToken::new();
    smsc_sim::start(
        config,
        smsc_sim::Listeners {
            smpp,
            tls: None,
            http,
        },
        shutdown.clone(),
    );
    Sim {
        smpp: smpp_addr,
        http: format!("http://{http_addr}"),
        shutdown,
        client: reqwest::Client::new(),
    }
}

pub async fn start(capacity: usize) -> Sim {
    start_with(&format!("[store]\ncapacity = {capacity}")).await
}

impl Sim {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .expect("HTTP answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .expect("HTTP answers")
            .text()
            .await
            .expect("body")
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.http));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("HTTP answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// GET a full URL; (status, JSON body or Null).
pub async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("HTTP answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub type Link = Framed<TcpStream, FrameCodec>;

pub async fn connect(addr: SocketAddr) -> Link {
    let stream = TcpStream::connect(addr).await.expect("connect");
    Framed::new(stream, FrameCodec::new(65_536))
}

/// The next command, or a panic after PATIENCE.
pub async fn next_command(link: &mut Link) -> Command {
    match tokio::time::timeout(PATIENCE, link.next())
        .await
        .expect("answer in time")
    {
        Some(Ok(Frame::Command(command))) => command,
        other => panic!("expected a command, got {other:?}"),
    }
}

pub async fn request(link: &mut Link, command: Command) -> Command {
    link.send(&command).await.expect("send");
    next_command(link).await
}

pub fn c<const MIN: usize, const MAX: usize>(value: &str) -> COctetString<MIN, MAX> {
    value.parse().expect("test literal fits")
}

pub fn bind(seq: u32, system_id: &str, password: &str) -> Command {
    let body = BindTransceiver::builder()
        .system_id(c(system_id))
        .password(c(password))
        .interface_version(InterfaceVersion::Smpp3_4)
        .build();
    Command::new(CommandStatus::EsmeRok, seq, body)
}

pub fn bind_transmitter(seq: u32, system_id: &str, password: &str) -> Command {
    let body = BindTransmitter::builder()
        .system_id(c(system_id))
        .password(c(password))
        .build();
    Command::new(CommandStatus::EsmeRok, seq, body)
}

pub fn bind_receiver(seq: u32, system_id: &str, password: &str) -> Command {
    let body = BindReceiver::builder()
        .system_id(c(system_id))
        .password(c(password))
        .build();
    Command::new(CommandStatus::EsmeRok, seq, body)
}

pub fn submit(seq: u32, to: &str, data_coding: u8, message: Vec<u8>) -> Command {
    submit_with(seq, to, data_coding, message, 0)
}

pub fn submit_with(
    seq: u32,
    to: &str,
    data_coding: u8,
    message: Vec<u8>,
    registered_delivery: u8,
) -> Command {
    let body = SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr(c("TEST"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c(to))
        .esm_class(EsmClass::from(0u8))
        .registered_delivery(RegisteredDelivery::from(registered_delivery))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_vec(message).expect("fits"))
        .build();
    Command::new(CommandStatus::EsmeRok, seq, body)
}

/// The message_id of a submit_sm_resp / data_sm_resp.
pub fn message_id(response: &Command) -> String {
    match response.pdu() {
        Some(Pdu::SubmitSmResp(body)) => body.message_id().as_str().to_owned(),
        Some(Pdu::DataSmResp(body)) => body.message_id().as_str().to_owned(),
        other => panic!("expected a submit or data response, got {other:?}"),
    }
}

/// Sends `command` and returns its response (by sequence_number), with the deliver_sm that
/// arrived before it: receipts come when they are due, not after the response that follows
/// their submit, so a test must not take "the next frame" for the response.
pub async fn request_with_deliveries(
    link: &mut Link,
    command: Command,
) -> (Command, Vec<DeliverSm>) {
    let seq = command.sequence_number();
    link.send(&command).await.expect("send");
    let mut delivered = Vec::new();
    loop {
        let next = next_command(link).await;
        match next.pdu() {
            Some(Pdu::DeliverSm(body)) => delivered.push(body.clone()),
            _ if next.sequence_number() == seq => return (next, delivered),
            other => panic!("expected the response to {seq} or a deliver_sm, got {other:?}"),
        }
    }
}

/// The next PDU, which must be a deliver_sm: (sequence_number, body).
pub async fn next_deliver_sm(link: &mut Link) -> (u32, DeliverSm) {
    let command = next_command(link).await;
    match command.pdu() {
        Some(Pdu::DeliverSm(body)) => (command.sequence_number(), body.clone()),
        other => panic!("expected deliver_sm, got {other:?}"),
    }
}
