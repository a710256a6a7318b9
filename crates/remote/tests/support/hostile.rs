//! A small HTTP/1.1 server of our own on loopback whose answers a test scripts: truncated
//! bodies, lying `Content-Range`, errors, silence, an object swapped between requests.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Which request this is (0 for the first).
    pub idx: usize,
    /// The `Range` header's first and last byte.
    pub range: Option<(u64, u64)>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
}

/// What the server does with a request.
pub enum Answer {
    /// Bytes `range` of `file` (the whole file when the request has no range), with `etag`;
    /// 412 when the request's `If-Match` names another ETag.
    Serve {
        file: Arc<Vec<u8>>,
        etag: &'static str,
    },
    /// A 206 whose `Content-Length` is right but whose body stops after `sent` bytes.
    Truncate { file: Arc<Vec<u8>>, sent: usize },
    /// A 206 whose `Content-Range` names other bytes than asked.
    LieAboutRange { file: Arc<Vec<u8>> },
    /// A bare status with an empty body.
    Status(u16),
    /// Nothing, ever (the connection stays open until the server stops).
    Silence,
}

type Script = dyn Fn(&Request) -> Answer + Send + Sync;

pub struct Hostile {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    requests: Arc<AtomicUsize>,
}

impl Hostile {
    pub fn start(script: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let accept = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (stop, requests, script) = (
                        Arc::clone(&stop),
                        Arc::clone(&requests),
                        Arc::clone(&script),
                    );
                    std::thread::spawn(move || serve(stream, &stop, &requests, &*script));
                }
            })
        };
        Hostile {
            port,
            stop,
            accept: Some(accept),
            requests,
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Requests received so far.
    pub fn n_requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(stream: TcpStream, stop: &AtomicBool, requests: &AtomicUsize, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 || stop.load(Ordering::SeqCst) {
            return;
        }
        let mut range = None;
        let mut if_match = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "range" => {
                    range = value
                        .strip_prefix("bytes=")
                        .and_then(|spec| spec.split_once('-'))
                        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                }
                "if-match" => if_match = Some(value.to_owned()),
                _ => {}
            }
        }
        let idx = requests.fetch_add(1, Ordering::SeqCst);
        let request = Request {
            idx,
            range,
            if_match,
        };
        let answer = script(&request);
        let clip = |file: &[u8]| match request.range {
            Some((first, last)) => {
                let last = last.min(file.len() as u64 - 1);
                (first, last)
            }
            None => (0, file.len() as u64 - 1),
        };
        let written = match answer {
            Answer::Serve { file, etag } => {
                let etag = format!("\"{etag}\"");
                if request
                    .if_match
                    .as_ref()
                    .is_some_and(|wanted| *wanted != etag)
                {
                    write!(stream, "HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\nETag: {etag}\r\n\r\n")
                } else {
                    let (first, last) = clip(&file);
                    let body = &file[first as usize..=last as usize];
                    write!(
                        stream,
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {first}-{last}/{}\r\nETag: {etag}\r\n\r\n",
                        body.len(),
                        file.len()
                    )
                    .and_then(|()| stream.write_all(body))
                }
            }
            Answer::Truncate { file, sent } => {
                let (first, last) = clip(&file);
                let body = &file[first as usize..=last as usize];
                let _ = write!(
                    stream,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {first}-{last}/{}\r\nETag: \"t\"\r\n\r\n",
                    body.len(),
                    file.len()
                )
                .and_then(|()| stream.write_all(&body[..sent.min(body.len())]));
                // Closes the connection mid-body.
                return;
            }
            Answer::LieAboutRange { file } => {
                let (first, last) = clip(&file);
                let body = &file[first as usize..=last as usize];
                write!(
                    stream,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {}-{}/{}\r\nETag: \"l\"\r\n\r\n",
                    body.len(),
                    first + 1,
                    last + 1,
                    file.len()
                )
                .and_then(|()| stream.write_all(body))
            }
            Answer::Status(status) => write!(
                stream,
                "HTTP/1.1 {status} Scripted\r\nContent-Length: 0\r\n\r\n"
            ),
            Answer::Silence => {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
        };
        if written.is_err() {
            return;
        }
    }
}
