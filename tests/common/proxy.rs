//! A frame-level SMPP proxy between the daemon and the simulator. It records every frame the
//! daemon sends, can hold them back (to keep messages in flight), and can inject frames towards
//! the daemon (as if the SMSC sent them).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};

/// Frames the daemon sent, each with the number of its connection, in arrival order.
type Captured = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;
/// The tasks of each connection, by number: aborting them drops its sockets.
type Connections = Arc<Mutex<Vec<Vec<tokio::task::AbortHandle>>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    captured: Captured,
    connections: Connections,
    captured_notify: Arc<Notify>,
    gate: watch::Sender<bool>,
    inject: mpsc::UnboundedSender<Vec<u8>>,
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).await.ok()?;
    let total = u32::from_be_bytes(length) as usize;
    let mut frame = length.to_vec();
    frame.resize(total.max(4), 0);
    reader.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

/// command_id of a frame.
pub fn command_id(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let captured: Captured = Arc::default();
        let captured_notify = Arc::new(Notify::new());
        let (gate, gate_rx) = watch::channel(true);
        let (inject, inject_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let inject_rx = Arc::new(tokio::sync::Mutex::new(inject_rx));
        let (cap, notify) = (captured.clone(), captured_notify.clone());
        let connections: Connections = Arc::default();
        let tasks = connections.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = tasks.lock().expect("connections lock").len();
                tasks.lock().expect("connections lock").push(Vec::new());
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let (cap, notify, mut gate_rx) = (cap.clone(), notify.clone(), gate_rx.clone());
                // Recording never waits for the gate, so held-back frames are still seen.
                let (held_tx, mut held_rx) = mpsc::unbounded_channel::<Vec<u8>>();
                let reader = tokio::spawn(async move {
                    while let Some(frame) = read_frame(&mut client_read).await {
                        cap.lock()
                            .expect("capture lock")
                            .push((number, frame.clone()));
                        notify.notify_waiters();
                        if held_tx.send(frame).is_err() {
                            break;
                        }
                    }
                });
                let writer = tokio::spawn(async move {
                    while let Some(frame) = held_rx.recv().await {
                        if gate_rx.wait_for(|open| *open).await.is_err() {
                            break;
                        }
                        if server_write.write_all(&frame).await.is_err() {
                            break;
                        }
                    }
                });
                let inject_rx = inject_rx.clone();
                let back = tokio::spawn(async move {
                    loop {
                        // The lock is held only while waiting, so every connection forwards;
                        // an injected frame goes to whichever connection waits for it first.
                        tokio::select! {
                            frame = read_frame(&mut server_read) => match frame {
                                Some(frame) => if client_write.write_all(&frame).await.is_err() { break },
                                None => break,
                            },
                            Some(frame) = async { inject_rx.lock().await.recv().await } => {
                                if client_write.write_all(&frame).await.is_err() { break }
                            }
                        }
                    }
                });
                tasks.lock().expect("connections lock")[number] = vec![
                    reader.abort_handle(),
                    writer.abort_handle(),
                    back.abort_handle(),
                ];
            }
        });
        Self {
            addr,
            connections,
            captured,
            captured_notify,
            gate,
            inject,
        }
    }

    /// Holds back (false) or lets through (true) what the daemon sends.
    pub fn set_open(&self, open: bool) {
        self.gate.send_replace(open);
    }

    /// Sends raw bytes to the daemon as if from the SMSC.
    pub fn inject(&self, frame: Vec<u8>) {
        self.inject.send(frame).expect("proxy running");
    }

    pub fn frames(&self) -> Vec<Vec<u8>> {
        self.captured
            .lock()
            .expect("capture lock")
            .iter()
            .map(|(_, frame)| frame.clone())
            .collect()
    }

    /// The connection number (0, 1, ... in accept order) of each frame with command_id `id`.
    pub fn connections_of(&self, id: u32) -> Vec<usize> {
        self.captured
            .lock()
            .expect("capture lock")
            .iter()
            .filter(|(_, frame)| command_id(frame) == id)
            .map(|(number, _)| *number)
            .collect()
    }

    /// Closes connection `number` on both sides, as a broken link would.
    pub fn drop_connection(&self, number: usize) {
        for task in &self.connections.lock().expect("connections lock")[number] {
            task.abort();
        }
    }

    pub fn frames_with(&self, id: u32) -> Vec<Vec<u8>> {
        self.frames()
            .into_iter()
            .filter(|f| command_id(f) == id)
            .collect()
    }

    /// Waits until at least `count` frames with command_id `id` were sent by the daemon.
    pub async fn wait_for(&self, id: u32, count: usize) -> Vec<Vec<u8>> {
        let wait = async {
            loop {
                let notified = self.captured_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let frames = self.frames_with(id);
                if frames.len() >= count {
                    return frames;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| {
                panic!("daemon never sent {count} frame(s) with command_id {id:#010x}")
            })
    }
}
