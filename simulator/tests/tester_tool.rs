//! The simulator as a tester's tool, over real sockets: receipts and their outcomes, faults set
//! at runtime, MO, query/cancel/replace, data_sm, bind limits, metrics.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use rusmpp::pdus::{CancelSm, DataSm, QuerySm, ReplaceSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::types::{AnyOctetString, OctetString};
use rusmpp::values::{MessagePayload, MessageState, Npi, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use serde_json::json;

fn receipt_tlvs(deliver: &rusmpp::pdus::DeliverSm) -> (Option<String>, Option<MessageState>) {
    let mut id = None;
    let mut state = None;
    for tlv in deliver.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(value)) => id = Some(value.as_str().to_owned()),
            Some(TlvValue::MessageState(value)) => state = Some(*value),
            _ => {}
        }
    }
    (id, state)
}

const RULES: &str = r#"
[[rules]]
to_prefix = "+3160000"
stat = "UNDELIV"
[[rules]]
to_suffix = "13"
submit_status = "ESME_RINVDSTADR"
"#;

#[tokio::test]
async fn receipts_report_the_outcome_rules_choose_with_text_and_tlvs() {
    let sim = start_with(RULES).await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;

    let delivered = message_id(
        &request(
            &mut link,
            submit_with(2, "31612345678", 0, b"code 1234".to_vec(), 1),
        )
        .await,
    );
    let (seq, receipt) = next_deliver_sm(&mut link).await;
    link.send(&Command::new(
        CommandStatus::EsmeRok,
        seq,
        rusmpp::pdus::DeliverSmResp::default(),
    ))
    .await
    .expect("ack");
    assert_eq!(u8::from(receipt.esm_class), 0x04);
    assert_eq!(receipt.source_addr.as_str(), "31612345678");
    assert_eq!(receipt.destination_addr.as_str(), "TEST");
    let text = String::from_utf8(receipt.short_message().as_ref().to_vec()).expect("ASCII");
    assert!(
        text.starts_with(&format!("id:{delivered} sub:001 dlvrd:001 submit date:")),
        "{text}"
    );
    assert!(
        text.contains(" stat:DELIVRD err:000 text:code 1234"),
        "{text}"
    );
    assert_eq!(
        receipt_tlvs(&receipt),
        (Some(delivered.clone()), Some(MessageState::Delivered))
    );

    let undelivered = message_id(
        &request(
            &mut link,
            submit_with(3, "31600001234", 0, b"x".to_vec(), 1),
        )
        .await,
    );
    let (_, receipt) = next_deliver_sm(&mut link).await;
    assert_eq!(
        receipt_tlvs(&receipt),
        (Some(undelivered), Some(MessageState::Undeliverable))
    );
    assert!(String::from_utf8_lossy(receipt.short_message().as_ref()).contains("dlvrd:000"));

    let refused = request(
        &mut link,
        submit_with(4, "31612345613", 0, b"x".to_vec(), 1),
    )
    .await;
    assert_eq!(refused.status(), CommandStatus::EsmeRinvdstadr);

    // registered_delivery 2 asks for failures only: a delivered message sends none, so the next
    // receipt to arrive is the one for the failure that follows it.
    request(
        &mut link,
        submit_with(5, "31612345678", 0, b"ok".to_vec(), 2),
    )
    .await;
    let failing = message_id(
        &request(
            &mut link,
            submit_with(6, "31600005555", 0, b"x".to_vec(), 2),
        )
        .await,
    );
    let (_, receipt) = next_deliver_sm(&mut link).await;
    assert_eq!(receipt_tlvs(&receipt).0, Some(failing));

    let (_, message) = sim.get(&format!("/api/messages/{delivered}")).await;
    assert_eq!(message["state"], "DELIVRD");
    assert!(message["receipt_sent_at"].is_string());
}

#[tokio::test]
async fn receipts_go_to_a_receiver_of_the_submitting_account() {
    let sim = start_with("").await;
    let mut transmitter = connect(sim.smpp).await;
    let mut receiver = connect(sim.smpp).await;
    assert_eq!(
        request(&mut transmitter, bind_transmitter(1, "tester", "pw"))
            .await
            .status(),
        CommandStatus::EsmeRok
    );
    assert_eq!(
        request(&mut receiver, bind_receiver(1, "tester", "pw"))
            .await
            .status(),
        CommandStatus::EsmeRok
    );
    let id = message_id(
        &request(
            &mut transmitter,
            submit_with(2, "31612345678", 0, b"hi".to_vec(), 1),
        )
        .await,
    );
    let (_, receipt) = next_deliver_sm(&mut receiver).await;
    assert_eq!(receipt_tlvs(&receipt).0, Some(id));
    // A receiver may not submit.
    assert_eq!(
        request(&mut receiver, submit(2, "31612345678", 0, b"x".to_vec()))
            .await
            .status(),
        CommandStatus::EsmeRinvbndsts
    );
}

fn query(seq: u32, id: &str) -> Command {
    Command::new(
        CommandStatus::EsmeRok,
        seq,
        QuerySm::builder()
            .message_id(c(id))
            .source_addr(c("TEST"))
            .build(),
    )
}

fn query_state(response: &Command) -> MessageState {
    match response.pdu() {
        Some(Pdu::QuerySmResp(body)) => body.message_state,
        other => panic!("expected query_sm_resp, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_en_route_can_be_queried_replaced_and_cancelled() {
    let sim = start_with("[receipts]\ndelay_ms = 600000").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let id = message_id(
        &request(
            &mut link,
            submit_with(2, "31612345678", 0, b"code 1111".to_vec(), 1),
        )
        .await,
    );
    assert_eq!(
        query_state(&request(&mut link, query(3, &id)).await),
        MessageState::Enroute
    );

    let replace = ReplaceSm::builder()
        .message_id(c(&id))
        .source_addr(c("TEST"))
        .short_message(OctetString::from_vec(b"code 2222".to_vec()).expect("fits"))
        .build();
    let replaced = request(&mut link, Command::new(CommandStatus::EsmeRok, 4, replace)).await;
    assert_eq!(
        (replaced.id(), replaced.status()),
        (CommandId::ReplaceSmResp, CommandStatus::EsmeRok)
    );
    let (_, message) = sim.get(&format!("/api/messages/{id}")).await;
    assert_eq!(
        (message["otp"].as_str(), message["state"].as_str()),
        (Some("2222"), Some("ENROUTE"))
    );

    let cancel = |seq| {
        Command::new(
            CommandStatus::EsmeRok,
            seq,
            CancelSm::builder()
                .message_id(c(&id))
                .source_addr(c("TEST"))
                .build(),
        )
    };
    assert_eq!(
        request(&mut link, cancel(5)).await.status(),
        CommandStatus::EsmeRok
    );
    assert_eq!(
        query_state(&request(&mut link, query(6, &id)).await),
        MessageState::Deleted
    );
    assert_eq!(
        request(&mut link, cancel(7)).await.status(),
        CommandStatus::EsmeRcancelfail
    );
    assert_eq!(
        request(&mut link, query(8, "ffffffff")).await.status(),
        CommandStatus::EsmeRqueryfail
    );
}

#[tokio::test]
async fn data_sm_carries_its_text_in_message_payload() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let mut data = DataSm::builder()
        .source_addr(c("TEST"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c("31612345678"))
        .build();
    data.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
        MessagePayload::new(AnyOctetString::from_vec(b"payload code 4711".to_vec())),
    ));
    let response = request(&mut link, Command::new(CommandStatus::EsmeRok, 2, data)).await;
    assert_eq!(
        (response.id(), response.status()),
        (CommandId::DataSmResp, CommandStatus::EsmeRok)
    );
    let id = message_id(&response);
    let (_, message) = sim.get(&format!("/api/messages/{id}")).await;
    assert_eq!(
        (message["text"].as_str(), message["otp"].as_str()),
        (Some("payload code 4711"), Some("4711"))
    );
}

#[tokio::test]
async fn bind_types_and_concurrent_binds_are_limited_per_account() {
    let sim = start_with("[[accounts]]\nsystem_id = \"tx-only\"\npassword = \"pw\"\nbind_types = [\"transmitter\"]\nmax_binds = 1").await;
    let mut first = connect(sim.smpp).await;
    assert_eq!(
        request(&mut first, bind(1, "tx-only", "pw")).await.status(),
        CommandStatus::EsmeRbindfail
    );
    assert_eq!(
        request(&mut first, bind_transmitter(2, "tx-only", "pw"))
            .await
            .status(),
        CommandStatus::EsmeRok
    );
    let mut second = connect(sim.smpp).await;
    assert_eq!(
        request(&mut second, bind_transmitter(1, "tx-only", "pw"))
            .await
            .status(),
        CommandStatus::EsmeRbindfail
    );
    // When the first unbinds, there is room again.
    request(
        &mut first,
        Command::new(CommandStatus::EsmeRok, 3, Pdu::Unbind),
    )
    .await;
    assert!(
        tokio::time::timeout(PATIENCE, first.next())
            .await
            .expect("closed")
            .is_none()
    );
    assert_eq!(
        request(&mut second, bind_transmitter(2, "tx-only", "pw"))
            .await
            .status(),
        CommandStatus::EsmeRok
    );
}

async fn submit_status(link: &mut Link, seq: &mut u32) -> CommandStatus {
    *seq += 1;
    request(link, submit(*seq, "31612345678", 0, b"x".to_vec()))
        .await
        .status()
}

async fn put_faults(sim: &Sim, query: &str, body: serde_json::Value) {
    let (status, view) = sim
        .send(Method::PUT, &format!("/api/faults{query}"), Some(body))
        .await;
    assert_eq!(status, 200, "{view}");
}

#[tokio::test]
async fn submit_faults_apply_at_runtime_and_per_account() {
    let sim = start_with("[[accounts]]\nsystem_id = \"other\"\npassword = \"pw\"").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let mut other = connect(sim.smpp).await;
    request(&mut other, bind(1, "other", "pw")).await;
    let mut seq = 10;

    put_faults(
        &sim,
        "?account=tester",
        json!({ "max_submits_per_second": 2 }),
    )
    .await;
    let statuses = [
        submit_status(&mut link, &mut seq).await,
        submit_status(&mut link, &mut seq).await,
        submit_status(&mut link, &mut seq).await,
    ];
    assert_eq!(
        statuses,
        [
            CommandStatus::EsmeRok,
            CommandStatus::EsmeRok,
            CommandStatus::EsmeRthrottled
        ]
    );
    assert_eq!(
        submit_status(&mut other, &mut seq).await,
        CommandStatus::EsmeRok,
        "only tester is throttled"
    );

    put_faults(
        &sim,
        "?account=tester",
        json!({ "queue_full_percent": 100 }),
    )
    .await;
    assert_eq!(
        submit_status(&mut link, &mut seq).await,
        CommandStatus::EsmeRmsgqful
    );
    put_faults(
        &sim,
        "",
        json!({ "error_percent": 100, "error_status": "ESME_RSUBMITFAIL" }),
    )
    .await;
    assert_eq!(
        submit_status(&mut other, &mut seq).await,
        CommandStatus::EsmeRsubmitfail
    );
    assert_eq!(
        submit_status(&mut link, &mut seq).await,
        CommandStatus::EsmeRmsgqful,
        "an account's own set wins"
    );

    let (status, problem) = sim
        .send(
            Method::PUT,
            "/api/faults",
            Some(json!({ "error_percent": 300 })),
        )
        .await;
    assert_eq!(
        (
            status,
            problem["detail"]
                .as_str()
                .map(|d| d.contains("error_percent"))
        ),
        (400, Some(true))
    );
    let (status, _) = sim
        .send(Method::PUT, "/api/faults", Some(json!({ "nonsense": 1 })))
        .await;
    assert_eq!(status, 400);

    let (_, view) = sim.send(Method::DELETE, "/api/faults", None).await;
    assert_eq!(view, json!({ "global": {}, "accounts": {} }));
    assert_eq!(
        submit_status(&mut link, &mut seq).await,
        CommandStatus::EsmeRok
    );
}

#[tokio::test]
async fn connection_faults_refuse_binds_drop_and_hang() {
    let sim = start_with("").await;
    put_faults(&sim, "", json!({ "refuse_binds": "ESME_RBINDFAIL" })).await;
    let mut link = connect(sim.smpp).await;
    assert_eq!(
        request(&mut link, bind(1, "tester", "pw")).await.status(),
        CommandStatus::EsmeRbindfail
    );
    sim.send(Method::DELETE, "/api/faults", None).await;
    assert_eq!(
        request(&mut link, bind(2, "tester", "pw")).await.status(),
        CommandStatus::EsmeRok
    );

    // Dropped on demand.
    let (_, dropped) = sim
        .send(Method::POST, "/api/sessions/drop?account=tester", None)
        .await;
    assert_eq!(dropped["dropped"], 1);
    assert!(
        tokio::time::timeout(PATIENCE, link.next())
            .await
            .expect("closed")
            .is_none()
    );

    // Dropped after answering N PDUs.
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    put_faults(&sim, "", json!({ "drop_after_pdus": 2 })).await;
    let enquire = |seq| Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink);
    assert_eq!(
        request(&mut link, enquire(2)).await.id(),
        CommandId::EnquireLinkResp
    );
    assert_eq!(
        request(&mut link, enquire(3)).await.id(),
        CommandId::EnquireLinkResp
    );
    assert!(
        tokio::time::timeout(PATIENCE, link.next())
            .await
            .expect("closed")
            .is_none()
    );

    // Hung: nothing is answered until the hang ends.
    let mut link = connect(sim.smpp).await;
    sim.send(Method::DELETE, "/api/faults", None).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    put_faults(&sim, "", json!({ "hang_seconds": 0.3 })).await;
    let started = Instant::now();
    link.send(&enquire(2)).await.expect("send");
    assert_eq!(
        next_command(&mut link).await.id(),
        CommandId::EnquireLinkResp
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn latency_delays_each_response_without_serialising_them() {
    let sim = start_with("[faults]\nlatency_ms = [200, 200]").await;
    let mut link = connect(sim.smpp).await;
    let started = Instant::now();
    request(&mut link, bind(1, "tester", "pw")).await;
    assert!(started.elapsed() >= Duration::from_millis(190));
    let started = Instant::now();
    for seq in 2..12 {
        link.feed(&submit(seq, "31612345678", 0, b"x".to_vec()))
            .await
            .expect("feed");
    }
    link.flush().await.expect("flush");
    for _ in 0..10 {
        assert_eq!(
            next_command(&mut link).await.status(),
            CommandStatus::EsmeRok
        );
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn mo_messages_reach_a_bound_receiver_and_are_recorded() {
    let sim = start_with("").await;
    let body = json!({ "from": "+31612345678", "to": "OTPGATE", "text": "STOP" });
    let (status, problem) = sim.send(Method::POST, "/api/mo", Some(body.clone())).await;
    assert_eq!((status, problem["status"].as_u64()), (409, Some(409)));

    let mut receiver = connect(sim.smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    let (status, accepted) = sim.send(Method::POST, "/api/mo", Some(body)).await;
    assert_eq!(status, 202);
    let (_, deliver) = next_deliver_sm(&mut receiver).await;
    assert_eq!(deliver.short_message().as_ref(), b"STOP");
    assert_eq!(
        (deliver.source_addr.as_str(), deliver.source_addr_ton),
        ("31612345678", Ton::International)
    );
    assert_eq!(deliver.destination_addr.as_str(), "OTPGATE");
    assert_eq!(u8::from(deliver.esm_class), 0);

    let (_, list) = sim.get("/api/messages?direction=mo").await;
    assert_eq!(list[0]["id"], accepted["id"]);
    assert_eq!(list[0]["direction"], "mo");
    let (status, _) = sim.get("/api/messages?direction=sideways").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn loopback_echoes_each_mt_back_as_an_mo() {
    let sim = start_with("[mo]\nloopback = true").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    request(&mut link, submit(2, "31612345678", 0, b"ping".to_vec())).await;
    let (_, echo) = next_deliver_sm(&mut link).await;
    assert_eq!(echo.source_addr.as_str(), "31612345678");
    assert_eq!(echo.destination_addr.as_str(), "TEST");
    assert_eq!(echo.short_message().as_ref(), b"ping");
}

#[tokio::test]
async fn metrics_count_submits_receipts_sessions_and_storage() {
    let sim = start_with(&format!("[store]\ncapacity = 2\n{RULES}")).await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    // The receipt of one submit may arrive before the response to the next (it is due at
    // once): responses are matched by sequence_number, receipts collected on the way. Taking
    // "the next frame" as the response, as this test once did, failed whenever the scheduler
    // won that race (a loaded machine, a fresh clone's first full run).
    let mut receipts = 0;
    for (seq, to) in [(2, "31612345678"), (3, "31600001111"), (4, "31612345613")] {
        let (response, delivered) =
            request_with_deliveries(&mut link, submit_with(seq, to, 0, b"x".to_vec(), 1)).await;
        assert_eq!(response.id(), CommandId::SubmitSmResp);
        receipts += delivered.len();
    }
    while receipts < 2 {
        next_deliver_sm(&mut link).await;
        receipts += 1;
    }
    let (response, delivered) =
        request_with_deliveries(&mut link, submit(5, "31612345678", 0, b"x".to_vec())).await;
    assert_eq!(
        (response.status(), delivered.len()),
        (CommandStatus::EsmeRok, 0)
    );
    let text = sim.text("/metrics").await;
    promtool::promtool_check(&text);
    for line in [
        "smsc_sim_submit_sm_total{account=\"tester\",status=\"ESME_ROK\"} 3",
        "smsc_sim_submit_sm_total{account=\"tester\",status=\"ESME_RINVDSTADR\"} 1",
        "smsc_sim_receipts_sent_total{stat=\"DELIVRD\"} 1",
        "smsc_sim_receipts_sent_total{stat=\"UNDELIV\"} 1",
        "smsc_sim_sessions{bind_type=\"transceiver\"} 1",
        "smsc_sim_messages_stored 2",
        // Three accepted and one refused submit (refusals are recorded too) in room for two.
        "smsc_sim_messages_evicted_total 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn too_many_pending_receipts_pause_reading_until_they_drain() {
    // Four receipts may wait; the fifth submit is not read until some are sent.
    let sim = start_with("[receipts]\nmax_pending = 4").await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    for seq in 2..6 {
        let accepted = request(
            &mut transmitter,
            submit_with(seq, "31612345678", 0, b"x".to_vec(), 1),
        )
        .await;
        assert_eq!(accepted.status(), CommandStatus::EsmeRok);
    }
    // No receiver is bound, so nothing drains: the next submit waits unanswered.
    transmitter
        .send(&submit_with(6, "31612345678", 0, b"x".to_vec(), 1))
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), transmitter.next())
            .await
            .is_err(),
        "answered while full"
    );
    // A receiver takes the receipts; below the resume mark the waiting submit is answered.
    let mut receiver = connect(sim.smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    for _ in 0..4 {
        next_deliver_sm(&mut receiver).await;
    }
    let answer = next_command(&mut transmitter).await;
    assert_eq!(
        (answer.sequence_number(), answer.status()),
        (6, CommandStatus::EsmeRok)
    );
}

/// submit_sm with the UDHI bit and `udh` prepended to `data`.
fn segment(seq: u32, data_coding: u8, udh: &[u8], data: &[u8]) -> Command {
    let mut body = udh.to_vec();
    body.extend_from_slice(data);
    let mut command = submit_with(seq, "31612345678", data_coding, body, 0);
    if let Some(Pdu::SubmitSm(submit)) = command.pdu() {
        let mut submit = submit.clone();
        submit.esm_class = rusmpp::values::EsmClass::from(0x40u8);
        command = Command::new(CommandStatus::EsmeRok, seq, submit);
    }
    command
}

#[tokio::test]
async fn concatenated_messages_are_reassembled_and_keep_their_parts() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;

    // GSM 03.38 with 8-bit references; the second part arrives first.
    let second = request(
        &mut link,
        segment(
            2,
            0,
            &[0x05, 0x00, 0x03, 0x7A, 0x02, 0x02],
            b"code is 123456",
        ),
    )
    .await;
    let (status, _) = sim.get("/api/messages/latest?to=%2B31612345678").await;
    assert_eq!(status, 404, "half a message is not a message");
    let first = request(
        &mut link,
        segment(
            3,
            0,
            &[0x05, 0x00, 0x03, 0x7A, 0x02, 0x01],
            b"Your verification ",
        ),
    )
    .await;
    let (_, whole) = sim.get("/api/messages/latest?to=%2B31612345678").await;
    assert_eq!(whole["text"], "Your verification code is 123456");
    assert_eq!(whole["otp"], "123456");
    assert_eq!(
        whole["parts"],
        json!([{ "seq": 1, "id": message_id(&first) }, { "seq": 2, "id": message_id(&second) }])
    );
    let (_, part) = sim
        .get(&format!("/api/messages/{}", message_id(&first)))
        .await;
    assert_eq!(
        part["segment"],
        json!({ "reference": 0x7A, "total": 2, "seq": 1 })
    );
    let (_, listed) = sim.get("/api/messages").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let (_, with_parts) = sim.get("/api/messages?parts=true").await;
    assert_eq!(with_parts.as_array().map(Vec::len), Some(3));

    // UCS-2 with 16-bit references, split inside a surrogate pair: decoded as one text.
    let utf16: Vec<u8> = "Код 😀 4321"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let split = 10; // after "Код " (8 bytes) and the high surrogate (2 bytes)
    request(
        &mut link,
        segment(
            4,
            8,
            &[0x06, 0x08, 0x04, 0x01, 0x00, 0x02, 0x01],
            &utf16[..split],
        ),
    )
    .await;
    request(
        &mut link,
        segment(
            5,
            8,
            &[0x06, 0x08, 0x04, 0x01, 0x00, 0x02, 0x02],
            &utf16[split..],
        ),
    )
    .await;
    let (_, whole) = sim.get("/api/messages/latest?to=%2B31612345678").await;
    assert_eq!(
        (whole["text"].as_str(), whole["otp"].as_str()),
        (Some("Код 😀 4321"), Some("4321"))
    );

    // sar_* TLVs, three parts out of order.
    for (seq, part, text) in [(6u32, 3u8, "!"), (7, 1, "sar "), (8, 2, "works")] {
        let mut command = submit(seq, "31699999999", 0, text.as_bytes().to_vec());
        if let Some(Pdu::SubmitSm(submit)) = command.pdu() {
            let mut submit = submit.clone();
            submit.push_tlv(MessageSubmissionRequestTlvValue::SarMsgRefNum(513));
            submit.push_tlv(MessageSubmissionRequestTlvValue::SarTotalSegments(3));
            submit.push_tlv(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(part));
            command = Command::new(CommandStatus::EsmeRok, seq, submit);
        }
        assert_eq!(
            request(&mut link, command).await.status(),
            CommandStatus::EsmeRok
        );
    }
    let (_, whole) = sim.get("/api/messages/latest?to=%2B31699999999").await;
    assert_eq!(whole["text"], "sar works!");
    let (_, part) = sim
        .get(&format!(
            "/api/messages/{}",
            whole["parts"][0]["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        part["tlvs"][0],
        json!({ "tag": "0x020C", "value": "SarMsgRefNum(513)" }),
        "{part}"
    );
    assert_eq!(whole["parts"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn new_messages_stream_as_server_sent_events() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let sim = start_with("").await;
    let address = sim.http.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("request");
    let mut lines = BufReader::new(stream).lines();
    let mut headers = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        if line.is_empty() {
            break;
        }
        headers.push(line.to_ascii_lowercase());
    }
    assert!(
        headers
            .iter()
            .any(|h| h == "content-type: text/event-stream"),
        "{headers:?}"
    );

    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    request(
        &mut link,
        submit(2, "31612345678", 0, b"live code 5150".to_vec()),
    )
    .await;
    let data = tokio::time::timeout(PATIENCE, async {
        let mut event = String::new();
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.to_owned();
            }
            if let Some(data) = line.strip_prefix("data: ").filter(|_| event == "message") {
                return data.to_owned();
            }
        }
        panic!("stream ended");
    })
    .await
    .expect("an event in time");
    let message: serde_json::Value = serde_json::from_str(&data).expect("JSON");
    assert_eq!(
        (message["text"].as_str(), message["otp"].as_str()),
        (Some("live code 5150"), Some("5150"))
    );
}

#[tokio::test]
async fn the_simulator_can_ask_an_esme_to_unbind() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let (_, answer) = sim
        .send(Method::POST, "/api/sessions/unbind?account=tester", None)
        .await;
    assert_eq!(answer["unbinding"], 1);
    let unbind = next_command(&mut link).await;
    assert_eq!(unbind.id(), CommandId::Unbind);
    link.send(&Command::new(
        CommandStatus::EsmeRok,
        unbind.sequence_number(),
        Pdu::UnbindResp,
    ))
    .await
    .expect("answer");
    assert!(
        tokio::time::timeout(PATIENCE, link.next())
            .await
            .expect("closed")
            .is_none()
    );

    // An ESME that never answers is closed after the timeout.
    let mut silent = connect(sim.smpp).await;
    request(&mut silent, bind(1, "tester", "pw")).await;
    sim.send(Method::POST, "/api/sessions/unbind", None).await;
    assert_eq!(next_command(&mut silent).await.id(), CommandId::Unbind);
    assert!(
        tokio::time::timeout(PATIENCE, silent.next())
            .await
            .expect("closed after the timeout")
            .is_none()
    );
}

#[tokio::test]
async fn a_receipt_not_acknowledged_goes_to_the_next_receiver() {
    let sim = start_with("").await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    let mut first = connect(sim.smpp).await;
    request(&mut first, bind_receiver(1, "tester", "pw")).await;
    let id = message_id(
        &request(
            &mut transmitter,
            submit_with(2, "31612345678", 0, b"x".to_vec(), 1),
        )
        .await,
    );
    let (_, receipt) = next_deliver_sm(&mut first).await;
    assert_eq!(receipt_tlvs(&receipt).0.as_deref(), Some(id.as_str()));
    // The receiver goes away without a deliver_sm_resp.
    drop(first);
    let mut second = connect(sim.smpp).await;
    request(&mut second, bind_receiver(1, "tester", "pw")).await;
    let (seq, again) = next_deliver_sm(&mut second).await;
    assert_eq!(
        receipt_tlvs(&again).0.as_deref(),
        Some(id.as_str()),
        "the same receipt, again"
    );
    second
        .send(&Command::new(
            CommandStatus::EsmeRok,
            seq,
            rusmpp::pdus::DeliverSmResp::default(),
        ))
        .await
        .expect("ack");
    // Acknowledged: it is not sent a third time.
    let nothing = tokio::time::timeout(Duration::from_millis(1500), second.next()).await;
    assert!(nothing.is_err(), "no more receipts: {nothing:?}");
}
