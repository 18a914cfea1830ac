//! SMPP load generator for benchmarking the simulator: C transceiver connections, each keeping
//! W submit_sm in flight, every message asking for a receipt (acknowledged with deliver_sm_resp).
//! Reports submit_sm/s and receipts/s. Driven by `scripts/bench-sim`; see docs/BENCHMARKS.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::types::OctetString;
use rusmpp::values::{DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, Ton};
use rusmpp::{Command, CommandId, CommandStatus};
use smpp_wire::{Frame, FrameCodec};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::{FramedRead, FramedWrite};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    smpp: SocketAddr,
    #[arg(long, default_value = "tester")]
    system_id: String,
    #[arg(long, default_value = "pw")]
    password: String,
    #[arg(long, default_value_t = 4)]
    connections: u64,
    #[arg(long, default_value_t = 256)]
    window: usize,
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// registered_delivery for every submit (1: a receipt for each).
    #[arg(long, default_value_t = 1)]
    registered_delivery: u8,
}

#[derive(Default)]
struct Counts {
    responses: AtomicU64,
    errors: AtomicU64,
    receipts: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let counts = Arc::new(Counts::default());
    let per_connection = args.messages / args.connections;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..args.connections {
        let (args, counts) = (args.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            connection(index, per_connection, &args, &counts).await
        }));
    }
    let mut responses_done = None;
    let total = per_connection * args.connections;
    let expected_receipts = if args.registered_delivery & 0x03 == 1 {
        total
    } else {
        0
    };
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if responses_done.is_none() && counts.responses.load(Ordering::Relaxed) >= total {
            responses_done = Some(started.elapsed());
        }
        if responses_done.is_some() && counts.receipts.load(Ordering::Relaxed) >= expected_receipts
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            anyhow::bail!("gave up after 300 s");
        }
    }
    let all_done = started.elapsed();
    for task in tasks {
        task.await??;
    }
    let submit_time = responses_done.unwrap_or(all_done);
    println!(
        "connections    {} x window {}",
        args.connections, args.window
    );
    println!(
        "submit_sm      {total} ({} refused)",
        counts.errors.load(Ordering::Relaxed)
    );
    println!(
        "submit rate    {:.0} submit_sm/s (all responses in {:.2} s)",
        total as f64 / submit_time.as_secs_f64(),
        submit_time.as_secs_f64()
    );
    println!("receipts       {}", counts.receipts.load(Ordering::Relaxed));
    println!(
        "receipt rate   {:.0} receipts/s (all receipts in {:.2} s)",
        expected_receipts as f64 / all_done.as_secs_f64(),
        all_done.as_secs_f64()
    );
    Ok(())
}

async fn connection(index: u64, messages: u64, args: &Args, counts: &Counts) -> anyhow::Result<()> {
    let stream = TcpStream::connect(args.smpp).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, FrameCodec::new(65_536));
    let mut writer = FramedWrite::new(write, FrameCodec::new(65_536));
    let bind = BindTransceiver::builder()
        .system_id(args.system_id.parse()?)
        .password(args.password.parse()?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .build();
    writer
        .send(&Command::new(CommandStatus::EsmeRok, 1, bind))
        .await?;
    match reader.next().await {
        Some(Ok(Frame::Command(resp))) if resp.status() == CommandStatus::EsmeRok => {}
        other => anyhow::bail!("bind failed: {other:?}"),
    }
    let window = Arc::new(Semaphore::new(args.window));
    let (acks, mut to_ack) = mpsc::unbounded_channel::<u32>();
    let wants_receipts = args.registered_delivery & 0x03 == 1;
    let reading = {
        let window = window.clone();
        async move {
            let (mut responses, mut receipts) = (0u64, 0u64);
            while responses < messages || (wants_receipts && receipts < messages) {
                match reader.next().await {
                    Some(Ok(Frame::Command(command))) => match command.id() {
                        CommandId::SubmitSmResp => {
                            responses += 1;
                            counts.responses.fetch_add(1, Ordering::Relaxed);
                            if command.status() != CommandStatus::EsmeRok {
                                counts.errors.fetch_add(1, Ordering::Relaxed);
                            }
                            window.add_permits(1);
                        }
                        CommandId::DeliverSm => {
                            receipts += 1;
                            counts.receipts.fetch_add(1, Ordering::Relaxed);
                            let _ = acks.send(command.sequence_number());
                        }
                        _ => {}
                    },
                    other => anyhow::bail!("read failed: {other:?}"),
                }
            }
            Ok::<(), anyhow::Error>(())
        }
    };
    let writing = async {
        let mut sent = 0u64;
        let mut sequence = 1u32;
        let text = OctetString::from_vec(b"Your verification code is 123456.".to_vec())?;
        loop {
            tokio::select! {
                permit = window.acquire(), if sent < messages => {
                    permit?.forget();
                    let mut batch = 1;
                    loop {
                        sequence += 1;
                        let to = format!("31{index:01}{:08}", sent % 100_000_000);
                        let submit = SubmitSm::builder()
                            .source_addr_ton(Ton::Alphanumeric)
                            .source_addr("LOAD".parse()?)
                            .dest_addr_ton(Ton::International)
                            .dest_addr_npi(Npi::Isdn)
                            .destination_addr(to.parse()?)
                            .esm_class(EsmClass::from(0u8))
                            .registered_delivery(RegisteredDelivery::from(args.registered_delivery))
                            .data_coding(DataCoding::from(0u8))
                            .short_message(text.clone())
                            .build();
                        writer.feed(&Command::new(CommandStatus::EsmeRok, sequence, submit)).await?;
                        sent += 1;
                        if sent >= messages || batch >= 64 {
                            break;
                        }
                        match window.try_acquire() {
                            Ok(permit) => permit.forget(),
                            Err(_) => break,
                        }
                        batch += 1;
                    }
                    while let Ok(seq) = to_ack.try_recv() {
                        writer.feed(&Command::new(CommandStatus::EsmeRok, seq, DeliverSmResp::default())).await?;
                    }
                    writer.flush().await?;
                }
                seq = to_ack.recv() => match seq {
                    Some(seq) => {
                        writer.feed(&Command::new(CommandStatus::EsmeRok, seq, DeliverSmResp::default())).await?;
                        while let Ok(seq) = to_ack.try_recv() {
                            writer.feed(&Command::new(CommandStatus::EsmeRok, seq, DeliverSmResp::default())).await?;
                        }
                        writer.flush().await?;
                    }
                    None => break,
                },
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    let (read_result, write_result) = tokio::join!(reading, writing);
    read_result?;
    // The writer ends when the reader (and with it the ack sender) is gone.
    write_result
}
