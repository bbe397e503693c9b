//! The floor: the same bytes through `socketpair(2)`s on one thread, no runtime, no parsing —
//! what the kernel alone costs. And the blocking reference for large messages: two threads,
//! `serde_json::to_writer` / `serde_json::from_slice`, `write_all` / `read_exact`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bunctl_ipc::IpcMessage;

/// Round trips of fixed-size request and reply frames between the two ends of one pair.
pub struct RoundTrip {
    a: UnixStream,
    b: UnixStream,
    request: Vec<u8>,
    reply: Vec<u8>,
    buf: Vec<u8>,
}

impl RoundTrip {
    /// A pair carrying `request` one way and `reply` back.
    pub fn new(request: Vec<u8>, reply: Vec<u8>) -> RoundTrip {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let buf = vec![0; request.len().max(reply.len())];
        RoundTrip { a, b, request, reply, buf }
    }

    /// One round trip: 2 writes, 2 reads.
    pub fn once(&mut self) {
        self.a.write_all(&self.request).expect("write");
        self.b.read_exact(&mut self.buf[..self.request.len()]).expect("read");
        self.b.write_all(&self.reply).expect("write");
        self.a.read_exact(&mut self.buf[..self.reply.len()]).expect("read");
    }

    /// `n` round trips, optionally timing each (ns).
    pub fn run(&mut self, n: u64, record: bool) -> (Duration, Vec<u32>) {
        timed_loop!(n, record, self.once())
    }
}

/// Request frames in batches of `BATCH` per write, replies likewise.
pub struct Pipelined {
    a: UnixStream,
    b: UnixStream,
    requests: Vec<u8>,
    replies: Vec<u8>,
    request_len: usize,
    reply_len: usize,
    buf: Vec<u8>,
}

const BATCH: usize = 64;

impl Pipelined {
    /// A pair for `request`/`reply` frames.
    pub fn new(request: &[u8], reply: &[u8]) -> Pipelined {
        let (a, b) = UnixStream::pair().expect("socketpair");
        Pipelined {
            a,
            b,
            requests: request.repeat(BATCH),
            replies: reply.repeat(BATCH),
            request_len: request.len(),
            reply_len: reply.len(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Moves `n` requests and `n` replies, up to `BATCH` frames per write.
    pub fn run(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        let mut left = n as usize;
        while left > 0 {
            let k = left.min(BATCH);
            let (req, rep) =
                (&self.requests[..k * self.request_len], &self.replies[..k * self.reply_len]);
            self.a.write_all(req).expect("write");
            drain(&mut self.b, &mut self.buf, req.len());
            self.b.write_all(rep).expect("write");
            drain(&mut self.a, &mut self.buf, rep.len());
            left -= k;
        }
        start.elapsed()
    }
}

fn drain(s: &mut UnixStream, buf: &mut [u8], mut len: usize) {
    while len > 0 {
        let n = s.read(buf).expect("read");
        assert!(n > 0, "eof");
        len -= n;
    }
}

/// Large frames one way through a non-blocking pair, alternating writes and reads on one thread.
pub struct Bulk {
    a: UnixStream,
    b: UnixStream,
    frame: Vec<u8>,
    buf: Vec<u8>,
}

impl Bulk {
    /// A pair for copies of `frame`.
    pub fn new(frame: Vec<u8>) -> Bulk {
        let (a, b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).expect("nonblocking");
        b.set_nonblocking(true).expect("nonblocking");
        Bulk { a, b, frame, buf: vec![0; 256 * 1024] }
    }

    /// Moves `n` copies of the frame.
    pub fn run(&mut self, n: u64) -> Duration {
        let total = self.frame.len() as u64 * n;
        let (mut sent, mut received) = (0u64, 0u64);
        let start = Instant::now();
        while received < total {
            while sent < total {
                let off = (sent % self.frame.len() as u64) as usize;
                match self.a.write(&self.frame[off..]) {
                    Ok(k) => sent += k as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
            loop {
                match self.b.read(&mut self.buf) {
                    Ok(0) => panic!("eof"),
                    Ok(k) => received += k as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
        start.elapsed()
    }
}

/// The same frames written to `subscribers` pairs and read back, in batches.
pub struct Fanout {
    pairs: Vec<(UnixStream, UnixStream)>,
    batch: Vec<u8>,
    frame_len: usize,
    buf: Vec<u8>,
}

impl Fanout {
    /// `subscribers` pairs for copies of `frame`.
    pub fn new(subscribers: usize, frame: &[u8]) -> Fanout {
        let pairs = (0..subscribers).map(|_| UnixStream::pair().expect("socketpair")).collect();
        Fanout {
            pairs,
            batch: frame.repeat(BATCH),
            frame_len: frame.len(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// Delivers `n` frames to every subscriber, up to `BATCH` frames per write.
    pub fn run(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        let mut left = n as usize;
        while left > 0 {
            let k = left.min(BATCH);
            let batch = &self.batch[..k * self.frame_len];
            for (a, _) in &mut self.pairs {
                a.write_all(batch).expect("write");
            }
            for (_, b) in &mut self.pairs {
                drain(b, &mut self.buf, batch.len());
            }
            left -= k;
        }
        start.elapsed()
    }
}

/// Blocking serde_json over a blocking pair: a writer thread serializes `n` copies of `msg`
/// (one `write_all` per frame), this thread reads each frame with `read_exact` and parses it.
pub fn blocking_json(msg: &IpcMessage, n: u64) -> Duration {
    let (mut a, mut b) = UnixStream::pair().expect("socketpair");
    let msg = msg.clone();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        for _ in 0..n {
            let mut frame = vec![0u8; 4];
            serde_json::to_writer(&mut frame, &msg).expect("json");
            let len = (frame.len() - 4) as u32;
            frame[..4].copy_from_slice(&len.to_le_bytes());
            a.write_all(&frame).expect("write");
        }
    });
    for _ in 0..n {
        let mut header = [0u8; 4];
        b.read_exact(&mut header).expect("read");
        let mut body = vec![0u8; u32::from_le_bytes(header) as usize];
        b.read_exact(&mut body).expect("read");
        let _: IpcMessage = serde_json::from_slice(&body).expect("json");
    }
    let elapsed = start.elapsed();
    writer.join().expect("writer");
    elapsed
}
