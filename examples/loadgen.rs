//! Load generator for the daemon: POSTs `/v1/otp/send` (or, with `--tenant`,
//! `/v1/signin/sms/start`) for distinct numbers with a fixed concurrency and request count, then
//! (with `--sim`) waits until the simulator has received every accepted SMS. Driven by
//! `scripts/bench-e2e`; see docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// Base URL of the daemon, e.g. http://127.0.0.1:8080
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "dev-only-key")]
    key: String,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Base URL of the simulator's tester API; when set, end-to-end delivery is measured too.
    #[arg(long)]
    sim: Option<String>,
    /// Start SMS sign-ins in this tenant instead of sending plain codes.
    #[arg(long)]
    tenant: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let sim_before = match &args.sim {
        Some(sim) => submits(&client, sim).await?,
        None => 0,
    };
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, url, key, total, tenant) = (
            client.clone(),
            next.clone(),
            args.url.clone(),
            args.key.clone(),
            args.requests,
            args.tenant.clone(),
        );
        let path = match tenant {
            Some(_) => "/v1/signin/sms/start",
            None => "/v1/otp/send",
        };
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let body = match &tenant {
                    Some(tenant) => format!(r#"{{"tenant":"{tenant}","phone":"+447{n:09}"}}"#),
                    None => format!(r#"{{"phone":"+447{n:09}"}}"#),
                };
                let sent = Instant::now();
                let status = client
                    .post(format!("{url}{path}"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                latencies.push(sent.elapsed());
                *statuses.entry(status).or_default() += 1;
            }
            (latencies, statuses)
        }));
    }
    let mut latencies = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for worker in workers {
        let (l, s) = worker.await?;
        latencies.extend(l);
        for (status, count) in s {
            *statuses.entry(status).or_default() += count;
        }
    }
    let http_elapsed = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!("requests      {}", args.requests);
    println!("concurrency   {}", args.concurrency);
    println!("http elapsed  {:.2} s", http_elapsed.as_secs_f64());
    println!(
        "http rate     {:.0} req/s",
        args.requests as f64 / http_elapsed.as_secs_f64()
    );
    println!("statuses      {statuses:?}");
    println!("latency p50   {:.2} ms", pct(0.50).as_secs_f64() * 1e3);
    println!("latency p99   {:.2} ms", pct(0.99).as_secs_f64() * 1e3);
    println!(
        "latency max   {:.2} ms",
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    if let Some(sim) = &args.sim {
        let accepted = statuses.get(&202).copied().unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut delivered = 0;
        while Instant::now() < deadline {
            delivered = submits(&client, sim).await? - sim_before;
            if delivered >= accepted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e2e = started.elapsed();
        println!("delivered     {delivered} of {accepted} accepted");
        println!("e2e elapsed   {:.2} s", e2e.as_secs_f64());
        println!(
            "e2e rate      {:.0} SMS/s (HTTP send -> submit_sm recorded by the simulator)",
            delivered as f64 / e2e.as_secs_f64()
        );
    }
    Ok(())
}

async fn submits(client: &reqwest::Client, sim: &str) -> anyhow::Result<u64> {
    let stats: Value = client
        .get(format!("{sim}/api/stats"))
        .send()
        .await?
        .json()
        .await?;
    stats["submits"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no submits in simulator stats"))
}
