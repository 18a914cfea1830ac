//! The guessing budget, as an attacker who knows only a number spends it: resend, guess as many
//! times as each code allows, resend again, wait out every lock, for two simulated days. A new
//! code does not reset the number's failure count (NIST SP 800-63B 5.2.2), so with the shipped
//! defaults (10 in a row lock for 1 min doubling to 1 h; 50 per day window) no 24 hours hold
//! more than 100 wrong guesses. The daemon's clock is moved, not waited for; the per-number
//! send and verify rate limits (on the same clock) are opened wide, so that the lock alone is measured.

mod common;

use std::time::Duration;

use common::{Daemon, Options, Sim, wrong_code};
use reqwest::{Method, StatusCode};
use serde_json::json;

const PHONE: &str = "+31611000123";

/// The code an attacker does not know: any six digits but the real one.
async fn attacker_guess(sim: &Sim) -> String {
    wrong_code(&sim.code_for(PHONE).await)
}

#[tokio::test]
async fn an_attacker_who_resends_gets_at_most_100_wrong_guesses_in_any_24_hours() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.limits = "send_burst = 100000\nverify_burst = 100000".into();
    let daemon = Daemon::start_bound(options).await;

    // (simulated seconds since the start, wrong guess) for every denied attempt.
    let mut denied: Vec<u64> = Vec::new();
    let mut now = 0u64;
    let mut lockouts = Vec::new();
    let two_days = 2 * 86_400;
    // Bounded: without the lock the attacker would get 5 guesses per code for ever.
    while now < two_days && denied.len() <= 100 {
        let (status, body) = daemon.send(PHONE).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let guess = attacker_guess(&sim).await;
        loop {
            let (status, body) = daemon.verify(PHONE, &guess).await;
            match status {
                StatusCode::OK if body["status"] == "denied" => denied.push(now),
                // The code's own attempts are spent: send another.
                StatusCode::OK if body["status"] == "max_attempts_reached" => break,
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_eq!(body["limit"], "number_locked", "{body}");
                    // "rate limit number_locked exceeded; retry after N s" (and Retry-After: N).
                    let wait: u64 = body["detail"]
                        .as_str()
                        .and_then(|d| d.split_whitespace().find_map(|w| w.parse().ok()))
                        .expect("the problem says how long");
                    lockouts.push(wait);
                    // The attacker waits out the lock exactly.
                    daemon.clock.advance(Duration::from_secs(wait));
                    now += wait;
                    break;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        // A second between codes, as a script would take.
        daemon.clock.advance(Duration::from_secs(1));
        now += 1;
    }
    let most_in_a_day = denied
        .iter()
        .map(|&start| {
            denied
                .iter()
                .filter(|&&at| at >= start && at < start + 86_400)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most_in_a_day <= 100,
        "{most_in_a_day} wrong guesses within 24 hours ({} in two days, locks {lockouts:?})",
        denied.len()
    );
    // 50 per day window, the window opening at the first wrong guess and locking at the 50th:
    // two windows in two days.
    assert_eq!(denied.len(), 100, "locks {lockouts:?}");
    assert!(
        lockouts.len() >= 2,
        "consecutive failures locked the number: {lockouts:?}"
    );

    // Once the lock is over, the owner's fresh code verifies, and the record starts clean.
    let (_, metrics) = daemon.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("otpgate_otp_lockouts_total") && !l.ends_with(" 0")),
        "lockouts are counted"
    );
    daemon.clock.advance(Duration::from_secs(86_400));
    daemon.send(PHONE).await;
    let code = sim.code_for(PHONE).await;
    assert_eq!(daemon.verify(PHONE, &code).await.1["status"], "approved");
    daemon.stop().await;
}

#[tokio::test]
async fn a_locked_number_is_refused_before_its_code_is_compared() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.limits = "send_burst = 100000\nverify_burst = 100000".into();
    options.otp_extra = "max_consecutive_failures = 3\nmax_attempts = 5".into();
    let daemon = Daemon::start_bound(options).await;
    daemon.send(PHONE).await;
    let code = sim.code_for(PHONE).await;
    let wrong = wrong_code(&code);
    for _ in 0..3 {
        assert_eq!(daemon.verify(PHONE, &wrong).await.1["status"], "denied");
    }
    // Even the right code is refused while locked, and a fresh code does not unlock.
    let (status, body) = daemon.verify(PHONE, &code).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["limit"], "number_locked");
    daemon.send(PHONE).await;
    let fresh = sim.code_for(PHONE).await;
    assert_eq!(
        daemon.verify(PHONE, &fresh).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // After the minute, the pending code still has its attempts: the lock compared nothing.
    daemon.clock.advance(Duration::from_secs(60));
    assert_eq!(daemon.verify(PHONE, &fresh).await.1["status"], "approved");
    daemon.stop().await;
}

/// Sign-in has the same budget: a new start gives fresh attempts, not fresh guesses. A decoy
/// (a number that is not ready) locks alike, so a lock tells nothing about the number.
#[tokio::test]
async fn sign_in_starts_do_not_reset_the_guessing_budget_for_ready_or_unknown_numbers() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    options.signin = true;
    options.limits = "send_burst = 100000\nverify_burst = 100000".into();
    options.otp_extra = "max_consecutive_failures = 6\nmax_attempts = 5".into();
    let daemon = Daemon::start_bound(options).await;
    daemon.create_tenant("contoso").await;
    daemon.policy_all_users("contoso").await;
    let user = daemon.create_user("contoso", "Adele").await;
    daemon
        .add_phone("contoso", &user, "+31611000456", "mobile")
        .await;
    assert_eq!(
        daemon.enable_sign_in("contoso", &user).await.0,
        StatusCode::OK
    );
    for (phone, ready) in [("+31611000456", true), ("+31611000457", false)] {
        let mut refused = None;
        let mut sent = 0;
        // Six wrong codes over two starts (five, then one), then a lock on the seventh.
        'starts: for _ in 0..3 {
            let flow = daemon.start_sign_in("contoso", phone).await;
            let guess = if ready {
                sent += 1;
                wrong_code(&sim.next_code_after(phone, sent - 1).await)
            } else {
                "000000".to_owned()
            };
            for _ in 0..5 {
                let (status, body) = daemon
                    .call(
                        Method::POST,
                        common::SIGNIN_KEY,
                        "/v1/signin/sms/complete",
                        Some(json!({ "flow": flow, "code": guess })),
                    )
                    .await;
                if status == StatusCode::OK && body["status"] == "max_attempts_reached" {
                    continue 'starts;
                }
                if status != StatusCode::OK || body["status"] != "denied" {
                    refused = Some((status, body));
                    break 'starts;
                }
            }
        }
        let (status, body) = refused.unwrap_or_else(|| panic!("{phone} was never locked"));
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{phone}: {body}");
        assert_eq!(body["limit"], "number_locked", "{phone}: {body}");
    }
    daemon.stop().await;
}
