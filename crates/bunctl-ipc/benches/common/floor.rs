//! The floor, the same bytes through `socketpair(2)`s on one thread (what the kernel alone
//! costs), and the blocking reference for large messages (serde_json on two threads).

use super::{Run, Work, msgs};
use bunctl_ipc::IpcMessage;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The floor's `work`, or with `blocking` the blocking reference's.
pub fn setup(blocking: bool, work: Work) -> Run {
    let (req, rep) = (msgs::frame(&msgs::small_request()), msgs::frame(&msgs::small_reply()));
    match work {
        Work::Pipelined(r) if blocking => Box::new(move |n, _| (self::blocking(&r, n), vec![])),
        Work::Pipelined(r) if r != msgs::small_request() => {
            let frame = msgs::frame(&r);
            Box::new(move |n, _| (bulk(&frame, n), vec![]))
        }
        Work::Pipelined(_) => Box::new(move |n, _| (batched(1, &[&req, &rep], n), vec![])),
        _ => Box::new(move |n, record| round_trip(&req, &rep, n, record)),
    }
}

fn pair() -> [UnixStream; 2] {
    let (a, b) = UnixStream::pair().expect("socketpair");
    [a, b]
}

pub fn round_trip(request: &[u8], reply: &[u8], n: u64, record: bool) -> (Duration, Vec<u32>) {
    let ([mut a, mut b], mut buf) = (pair(), vec![0; request.len().max(reply.len())]);
    timed_loop!(n, record, {
        a.write_all(request).expect("write");
        b.read_exact(&mut buf[..request.len()]).expect("read");
        b.write_all(reply).expect("write");
        a.read_exact(&mut buf[..reply.len()]).expect("read");
    })
}

const BATCH: u64 = 64;

/// `n` copies of each leg's frame (a request, then its reply) through `pairs` socket pairs, in
/// batches: written to every pair, then drained.
pub fn batched(pairs: usize, legs: &[&[u8]], n: u64) -> Duration {
    let mut pairs: Vec<_> = (0..pairs).map(|_| pair()).collect();
    let batches: Vec<Vec<u8>> = legs.iter().map(|f| f.repeat(BATCH as usize)).collect();
    let mut buf = vec![0; 64 << 10];
    let start = Instant::now();
    for done in (0..n).step_by(BATCH as usize) {
        let k = (n - done).min(BATCH) as usize;
        for (i, (frame, batch)) in legs.iter().zip(&batches).enumerate() {
            let bytes = &batch[..k * frame.len()];
            for p in &mut pairs {
                p[i % 2].write_all(bytes).expect("write");
            }
            for p in &mut pairs {
                let mut left = bytes.len();
                while left > 0 {
                    left -= p[1 - i % 2].read(&mut buf).ok().filter(|&got| got > 0).expect("read");
                }
            }
        }
    }
    start.elapsed()
}

/// `n` copies of a large frame through a non-blocking pair, writes and reads taking turns.
pub fn bulk(frame: &[u8], n: u64) -> Duration {
    let ([mut a, mut b], mut buf) = (pair(), vec![0; 256 << 10]);
    a.set_nonblocking(true).and_then(|()| b.set_nonblocking(true)).expect("nonblocking");
    let total = frame.len() as u64 * n;
    let (mut sent, mut received) = (0u64, 0u64);
    let start = Instant::now();
    let more = |r: io::Result<usize>| match r {
        Ok(0) => panic!("eof"),
        Ok(k) => Some(k as u64),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => panic!("{e}"),
    };
    while received < total {
        while sent < total
            && let Some(k) = more(a.write(&frame[(sent % frame.len() as u64) as usize..]))
        {
            sent += k;
        }
        while let Some(k) = more(b.read(&mut buf)) {
            received += k;
        }
    }
    start.elapsed()
}

/// Blocking serde_json: a writer thread serializes `n` copies of `msg`, this one parses them.
pub fn blocking(msg: &IpcMessage, n: u64) -> Duration {
    let ([mut a, mut b], msg) = (pair(), msg.clone());
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
