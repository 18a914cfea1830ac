//! A stream whose writes must make progress: a write (or flush) that stays blocked for longer
//! than the deadline fails with `TimedOut`, and hyper then drops the connection. Without it, a
//! client that sends requests and never reads the answers would hold its connection (and a slot
//! of `server.max_connections`) forever once the socket buffers fill.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct WriteDeadline<T> {
    inner: T,
    deadline: Duration,
    /// Running while a write is blocked; reset by any progress.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub fn new(inner: T, deadline: Duration) -> Self {
        Self {
            inner,
            deadline,
            blocked: None,
        }
    }

    /// Passes on a ready write; on a blocked one, starts (or checks) the deadline.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let deadline = self.deadline;
        let timer = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(deadline)));
        ready!(timer.as_mut().poll(cx));
        self.blocked = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not read the response in time",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_deadline_fails_and_progress_resets_it() {
        // A pipe with room for 8 bytes that nobody reads.
        let (client, _unread) = tokio::io::duplex(8);
        let mut stream = WriteDeadline::new(client, Duration::from_secs(10));
        stream
            .write_all(b"12345678")
            .await
            .expect("fits the buffer");
        let blocked = stream.write_all(b"more");
        let err = blocked.await.expect_err("nobody reads");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // A reader that keeps up: every write completes, however long it all takes in total.
        let (client, mut reader) = tokio::io::duplex(8);
        let mut stream = WriteDeadline::new(client, Duration::from_secs(10));
        let drain = tokio::spawn(async move {
            let mut buf = [0u8; 4];
            let mut total = 0;
            while total < 64 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                total += tokio::io::AsyncReadExt::read(&mut reader, &mut buf)
                    .await
                    .expect("read");
            }
        });
        stream.write_all(&[7u8; 64]).await.expect("slow but steady");
        drain.await.expect("reader");
    }
}
