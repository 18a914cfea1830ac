//! Several carriers and several binds: routes by longest prefix and weight, failover when a
//! carrier loses its links or keeps failing (circuit breaker), transmitter + receiver pairs, and
//! a message moving to another session when its own link drops. Every SMSC is a real simulator
//! over TCP; the proxy records what went over which connection.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::proxy::Proxy;
use common::{Daemon, Options, SMS_KEY, Sim, carrier_entry, sample, unique_carrier};
use otpgate::metrics as m;
use reqwest::StatusCode;
use serde_json::json;
use smpp_codec::common::BindMode;
use smpp_codec::pdus::BindRequest;

const BIND_RECEIVER: u32 = 0x0000_0001;
const BIND_TRANSMITTER: u32 = 0x0000_0002;
const SUBMIT_SM: u32 = 0x0000_0004;
const UNBIND: u32 = 0x0000_0006;
const DELIVER_SM_RESP: u32 = 0x8000_0005;

/// Which carrier each message ended with, counted; every message must reach a final state.
async fn carriers_of(daemon: &Daemon, ids: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        let delivery = daemon.final_state(id).await;
        assert_eq!(delivery["state"], "submitted", "{id}: {delivery}");
        let carrier = delivery["carrier"].as_str().expect("carrier").to_owned();
        *counts.entry(carrier).or_default() += 1;
    }
    counts
}

async fn metric(daemon: &Daemon, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let (_, text) = daemon.get_text("/metrics").await;
    sample(&text, name, labels)
}

fn route(prefix: &str, carrier: &str, extra: &str) -> String {
    format!("\n[[routes]]\nprefix = \"{prefix}\"\ncarrier = \"{carrier}\"\n{extra}\n")
}

/// Two SMSCs and a daemon with carrier `a` on the first (through `proxy`, which records its
/// frames and can hold them back or drop its link) and `b` on the second, both bound. A test
/// binds (as `_name` if unused) each part that must live: `..` drops the rest at once.
struct TwoCarriers {
    sim_a: Sim,
    sim_b: Sim,
    proxy: Proxy,
    a: String,
    b: String,
    daemon: Daemon,
}

/// Starts `TwoCarriers` with extra lines for each carrier and `routes(a, b)` (TOML naming the
/// two carriers; empty: `a` first, `b` when `a` is unavailable).
async fn two_carriers(
    a_extra: &str,
    b_extra: &str,
    routes: impl Fn(&str, &str) -> String,
) -> TwoCarriers {
    let (sim_a, sim_b) = (Sim::start().await, Sim::start().await);
    let proxy = Proxy::start(sim_a.smpp).await;
    let (a, b) = (unique_carrier(), unique_carrier());
    let mut options = Options::new(sim_a.smpp);
    options.carriers = Some(
        [
            carrier_entry(&a, proxy.addr, a_extra),
            carrier_entry(&b, sim_b.smpp, b_extra),
            routes(&a, &b),
        ]
        .concat(),
    );
    let daemon = Daemon::start(options).await;
    daemon.wait_sessions(2).await;
    TwoCarriers {
        sim_a,
        sim_b,
        proxy,
        a,
        b,
        daemon,
    }
}

/// Carrier `a`'s lines for a primary that, once its link drops, stays down for the whole test.
const STAYS_DOWN: &str = "reconnect_initial_ms = 60000\nreconnect_max_ms = 60000";

#[tokio::test]
async fn the_longest_prefix_chooses_the_carrier_and_weights_share_traffic_exactly() {
    let TwoCarriers {
        sim_a,
        sim_b,
        a,
        b,
        daemon,
        proxy: _proxy,
    } = two_carriers("", "", |a, b| {
        [
            route("+44", b, ""),
            route("+1", a, "weight = 3"),
            route("+1", b, "weight = 1"),
            route("+31", a, ""),
        ]
        .concat()
    })
    .await;

    let shared = daemon.send_many(8, "+1425555").await;
    let counts = carriers_of(&daemon, &shared).await;
    assert_eq!(counts, BTreeMap::from([(a.clone(), 6), (b.clone(), 2)]));
    let uk = daemon.send_many(2, "+4420790").await;
    assert_eq!(
        carriers_of(&daemon, &uk).await,
        BTreeMap::from([(b.clone(), 2)])
    );
    let nl = daemon.send_many(1, "+3161234").await;
    assert_eq!(carriers_of(&daemon, &nl).await, BTreeMap::from([(a, 1)]));
    // The simulators agree: each got exactly its share.
    assert_eq!(sim_a.stats_now().submits, 7);
    assert_eq!(sim_b.stats_now().submits, 4);
    assert!(sim_b.latest("+44207900001").await.is_some());

    // No route serves +33: refused up front, nothing issued or sent.
    let (status, problem) = daemon.send("+33612345678").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "urn:otpgate:problem:no-route");
    let (status, problem) = daemon
        .post_with(
            SMS_KEY,
            "/v1/sms",
            json!({ "to": "+33612345678", "text": "hello" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(sim_a.stats_now().submits + sim_b.stats_now().submits, 11);
    daemon.stop().await;
}

#[tokio::test]
async fn when_the_primary_loses_its_link_its_unanswered_messages_go_to_the_next_route() {
    // No [[routes]]: the first carrier is primary, the second takes over.
    let TwoCarriers {
        sim_a,
        sim_b,
        proxy,
        a,
        b,
        daemon,
    } = two_carriers(STAYS_DOWN, "", |_, _| String::new()).await;

    proxy.set_open(false);
    let held = daemon.send_many(5, "+3161100").await;
    proxy.wait_for(SUBMIT_SM, 5).await;
    proxy.drop_connection(0);
    daemon.wait_sessions(1).await;
    let after = daemon.send_many(2, "+3161101").await;

    assert_eq!(
        carriers_of(&daemon, &held).await,
        BTreeMap::from([(b.clone(), 5)]),
        "the five written to the dropped link went to the next route"
    );
    assert_eq!(
        carriers_of(&daemon, &after).await,
        BTreeMap::from([(b.clone(), 2)])
    );
    assert_eq!(sim_a.stats_now().submits, 0);
    assert_eq!(sim_b.stats_now().submits, 7);
    let failovers = [("from", a.as_str()), ("to", b.as_str())];
    assert_eq!(
        metric(&daemon, m::SMS_FAILOVERS_TOTAL, &failovers).await,
        Some(7.0)
    );
    assert_eq!(
        metric(&daemon, m::CARRIER_AVAILABLE, &[("carrier", &a)]).await,
        Some(0.0)
    );
    assert_eq!(
        metric(
            &daemon,
            m::SMS_RESUBMITTED_TOTAL,
            &[("carrier", &a), ("reason", "link_lost")]
        )
        .await,
        Some(5.0),
        "each may have reached the SMSC: counted as possible duplicates"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_carrier_that_keeps_failing_trips_its_breaker_and_its_traffic_moves() {
    let TwoCarriers {
        sim_a,
        sim_b,
        a,
        b,
        daemon,
        proxy: _proxy,
    } = two_carriers(
        "breaker_failures = 3\nbreaker_open_seconds = 60",
        "",
        |_, _| String::new(),
    )
    .await;
    sim_a
        .put_faults(json!({ "error_percent": 100, "error_status": "ESME_RSYSERR" }))
        .await;

    let first = daemon.send_many(10, "+3161200").await;
    assert_eq!(
        carriers_of(&daemon, &first).await,
        BTreeMap::from([(b.clone(), 10)]),
        "refused with a temporary error, every message was retried on the other carrier"
    );
    let refused = [("carrier", a.as_str()), ("result", "ESME_RSYSERR")];
    let refused_by_a = metric(&daemon, m::SMS_SUBMITTED_TOTAL, &refused).await;
    assert!(refused_by_a.is_some_and(|n| n >= 3.0), "{refused_by_a:?}");
    // With the breaker open, new traffic skips the failing carrier.
    let later = daemon.send_many(5, "+3161201").await;
    assert_eq!(
        carriers_of(&daemon, &later).await,
        BTreeMap::from([(b.clone(), 5)])
    );
    assert_eq!(
        metric(&daemon, m::SMS_SUBMITTED_TOTAL, &refused).await,
        refused_by_a
    );
    assert_eq!(sim_a.stats_now().submits, 0, "a accepted nothing");
    assert_eq!(sim_b.stats_now().submits, 15);

    let labels = [("carrier", a.as_str())];
    let trips = metric(&daemon, m::CARRIER_BREAKER_TRIPS_TOTAL, &labels).await;
    assert_eq!(trips, Some(1.0));
    let state = metric(&daemon, m::CARRIER_BREAKER_STATE, &labels).await;
    assert_eq!(state, Some(1.0), "open");
    let available = metric(&daemon, m::CARRIER_AVAILABLE, &labels).await;
    assert_eq!(available, Some(0.0));
    let failovers = [("from", a.as_str()), ("to", b.as_str())];
    assert_eq!(
        metric(&daemon, m::SMS_FAILOVERS_TOTAL, &failovers).await,
        Some(15.0)
    );
    daemon.stop().await;
}

#[tokio::test]
async fn transmitter_receiver_pairs_bind_with_the_address_range_and_receipts_come_back() {
    let sim = Sim::start().await;
    let proxy = Proxy::start(sim.smpp).await;
    let mut options = Options::new(proxy.addr);
    options.carrier_extra = "binds = 2\nbind_mode = \"transmitter_receiver\"\n\
                             address_range = \"^316\"\naddress_range_ton = 1\n\
                             address_range_npi = 1\nregistered_delivery = 1"
        .into();
    let daemon = Daemon::start(options).await;
    daemon.wait_sessions(4).await;

    let (status, sent) = daemon.send("+31612345678").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let id = sent["id"].as_str().expect("id");
    let record = daemon.wait_for_delivery(id, "delivered").await;
    assert_eq!(record["delivery"]["parts"], 1);
    daemon.stop().await;

    let transmitters = proxy.connections_of(BIND_TRANSMITTER);
    let receivers = proxy.connections_of(BIND_RECEIVER);
    assert_eq!((transmitters.len(), receivers.len()), (2, 2));
    for frame in proxy
        .frames_with(BIND_TRANSMITTER)
        .iter()
        .chain(&proxy.frames_with(BIND_RECEIVER))
    {
        let bind = BindRequest::decode(frame).expect("bind decodes");
        assert!(matches!(
            bind.mode,
            BindMode::Transmitter | BindMode::Receiver
        ));
        assert_eq!(bind.address_range, "^316");
        assert_eq!(bind.system_id, "otpgate");
    }
    let submitted_on = proxy.connections_of(SUBMIT_SM);
    assert_eq!(submitted_on.len(), 1);
    assert!(transmitters.contains(&submitted_on[0]));
    // The receipt was answered on a receiver link.
    let answered_on = proxy.connections_of(DELIVER_SM_RESP);
    assert!(!answered_on.is_empty());
    assert!(
        answered_on.iter().all(|c| receivers.contains(c)),
        "{answered_on:?}"
    );
    assert_eq!(
        proxy.frames_with(UNBIND).len(),
        4,
        "every link unbound on drain"
    );
}

#[tokio::test]
async fn when_one_session_drops_another_session_of_the_carrier_sends_its_messages() {
    let sim = Sim::start().await;
    let proxy = Proxy::start(sim.smpp).await;
    let mut options = Options::new(proxy.addr);
    // One submit in flight per session, and a dropped session stays down for the whole test:
    // only the other session can send what the dropped one had written.
    options.carrier_extra = "binds = 2\nwindow = 1".into();
    let daemon = Daemon::start(options).await;
    daemon.wait_sessions(2).await;

    proxy.set_open(false);
    let ids = daemon.send_many(4, "+3161300").await;
    proxy.wait_for(SUBMIT_SM, 2).await;
    let on = proxy.connections_of(SUBMIT_SM);
    assert_eq!(on.len(), 2);
    assert_ne!(on[0], on[1], "each session holds one");
    // Reconnects of the dropped session are refused from here on.
    sim.put_faults(json!({ "refuse_binds": "ESME_RBINDFAIL" }))
        .await;
    proxy.drop_connection(on[0]);
    daemon.wait_sessions(1).await;
    proxy.set_open(true);

    let mut states = BTreeMap::new();
    for id in &ids {
        let delivery = daemon.final_state(id).await;
        *states
            .entry(delivery["state"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(states, BTreeMap::from([("submitted".to_owned(), 4)]));
    assert_eq!(
        sim.stats_now().submits,
        4,
        "the dropped write never arrived"
    );
    let submits_by_connection = proxy.connections_of(SUBMIT_SM);
    assert_eq!(
        submits_by_connection
            .iter()
            .filter(|c| **c == on[1])
            .count(),
        4,
        "the surviving session sent all four, one of them again"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn carriers_on_the_same_smsc_account_match_receipts_that_came_through_either() {
    // The simulator hands each receipt to any receiving session of the account, so a message
    // sent through one carrier often has its receipt arrive on the other's link.
    let sim = Sim::start().await;
    let (a, b) = (unique_carrier(), unique_carrier());
    let mut options = Options::new(sim.smpp);
    options.carriers = Some(
        [
            carrier_entry(&a, sim.smpp, "registered_delivery = 1"),
            carrier_entry(&b, sim.smpp, "registered_delivery = 1"),
            route("", &a, ""),
            route("", &b, ""),
        ]
        .concat(),
    );
    let daemon = Daemon::start(options).await;
    daemon.wait_sessions(2).await;

    let ids = daemon.send_many(8, "+3161400").await;
    let mut carriers = BTreeMap::new();
    for id in &ids {
        let delivery = daemon.final_state(id).await;
        assert_eq!(delivery["state"], "delivered", "{id}: {delivery}");
        *carriers
            .entry(delivery["carrier"].as_str().expect("carrier").to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(carriers, BTreeMap::from([(a.clone(), 4), (b.clone(), 4)]));
    for carrier in [&a, &b] {
        let unmatched = [("carrier", carrier.as_str()), ("result", "unmatched")];
        assert_eq!(
            metric(&daemon, m::SMS_RECEIPTS_TOTAL, &unmatched).await,
            None,
            "{carrier}"
        );
    }
    daemon.stop().await;
}

#[tokio::test]
async fn during_shutdown_a_dropped_primary_still_fails_over_before_the_backup_unbinds() {
    let TwoCarriers {
        sim_a,
        sim_b,
        proxy,
        daemon,
        ..
    } = two_carriers(STAYS_DOWN, "", |_, _| String::new()).await;
    let mut sessions = daemon.carriers.bound_watch();

    proxy.set_open(false);
    daemon.send_many(3, "+3161500").await;
    proxy.wait_for(SUBMIT_SM, 3).await;
    // Shut down while the three are unanswered on the primary; the backup has nothing to send
    // of its own, yet must stay bound while the primary holds messages.
    let addr = daemon.url.trim_start_matches("http://").to_owned();
    let stopping = tokio::spawn(daemon.stop());
    // The drain starts once HTTP has stopped: wait (bounded) for the listener to go away.
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Without its own work the backup would unbind within milliseconds; it must not.
    let unbound = tokio::time::timeout(
        Duration::from_millis(500),
        sessions.wait_for(|count| *count < 2),
    )
    .await;
    assert!(
        unbound.is_err(),
        "a session unbound while messages were held"
    );
    proxy.drop_connection(0);
    tokio::time::timeout(common::PATIENCE, stopping)
        .await
        .expect("stops in time")
        .expect("stop task");
    assert_eq!(sim_a.stats_now().submits, 0);
    assert_eq!(
        sim_b.stats_now().submits,
        3,
        "moved to the backup, then drained"
    );
}

#[tokio::test]
async fn a_full_queue_sends_the_message_to_the_next_route_instead_of_refusing_it() {
    let TwoCarriers {
        proxy,
        a,
        b,
        daemon,
        sim_a: _sim_a,
        sim_b: _sim_b,
    } = two_carriers("window = 1\nqueue_capacity = 1", "", |_, _| String::new()).await;

    // The primary's one window slot holds the first message, its one queue slot the second.
    proxy.set_open(false);
    let first = daemon.send_many(1, "+3161600").await;
    proxy.wait_for(SUBMIT_SM, 1).await;
    let second = daemon.send_many(1, "+3161601").await;
    let third = daemon.send_many(1, "+3161602").await;
    assert_eq!(
        carriers_of(&daemon, &third).await,
        BTreeMap::from([(b.clone(), 1)])
    );
    let failovers = [("from", a.as_str()), ("to", b.as_str())];
    assert_eq!(
        metric(&daemon, m::SMS_FAILOVERS_TOTAL, &failovers).await,
        Some(1.0)
    );
    proxy.set_open(true);
    let both = [first, second].concat();
    assert_eq!(carriers_of(&daemon, &both).await, BTreeMap::from([(a, 2)]));
    daemon.stop().await;
}

#[tokio::test]
async fn messages_waiting_for_a_carrier_stuck_in_its_bind_move_once_another_can_send() {
    // The primary accepts TCP and never answers the bind (its bind timeout is a minute).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    // The backup's SMSC is down at first; it comes back on the same port.
    let backup = Sim::start().await;
    let backup_addr = backup.smpp;
    backup.kill().await;
    let (a, b) = (unique_carrier(), unique_carrier());
    let mut options = Options::new(silent_addr);
    options.carriers = Some(
        [
            carrier_entry(&a, silent_addr, "bind_timeout_ms = 60000"),
            carrier_entry(&b, backup_addr, ""),
        ]
        .concat(),
    );
    options.shutdown_timeout_seconds = 30;
    let daemon = Daemon::start(options).await;

    // Nothing can send: the messages wait on their best route, the primary.
    let ids = daemon.send_many(3, "+3161700").await;
    let backup = Sim::start_on(backup_addr).await;
    daemon.wait_sessions(1).await;
    assert_eq!(
        carriers_of(&daemon, &ids).await,
        BTreeMap::from([(b.clone(), 3)]),
        "moved while the primary was still waiting for its bind response"
    );
    assert_eq!(backup.stats_now().submits, 3);
    // Nothing is left to send, so shutdown does not wait out the pending bind (the deadline
    // is longer than the test's patience).
    daemon.stop().await;
    held.abort();
}
