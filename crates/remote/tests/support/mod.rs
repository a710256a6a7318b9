//! Servers the tests start on loopback and stop when dropped: nginx (Debian's package),
//! moto's S3 server (from the environment `cargo xtask venv` makes) and hostile HTTP servers
//! of our own.

pub mod hostile;
#[path = "../../../../tests/src/prerequisites.rs"]
#[allow(dead_code)]
mod prerequisites;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Waits until something listens on `port`, or panics with `what` after 30 s.
fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed and reaped when dropped, so no server outlives its test.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx serving a temporary directory on a loopback port, with an access log of our format:
/// `status body_bytes_sent "Range" "If-Match"`.
pub struct Nginx {
    _server: Server,
    dir: tempfile::TempDir,
    port: u16,
}

/// One line of nginx's access log.
#[derive(Debug, Clone)]
pub struct Access {
    pub status: u16,
    pub bytes: u64,
    /// Shown in failure messages.
    #[allow(dead_code)]
    pub range: String,
    pub if_match: String,
}

fn nginx_binary() -> PathBuf {
    let candidates = [
        std::env::var_os("MMAPPICKLE_NGINX").map(PathBuf::from),
        Some(PathBuf::from("/usr/sbin/nginx")),
        Some(PathBuf::from("/usr/bin/nginx")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            prerequisites::stop_missing(
                "nginx is not installed: the remote tests serve files with Debian's nginx \
                 (`.ci/run` installs it with `apt-get install -y nginx`; or set MMAPPICKLE_NGINX)",
            )
        })
}

impl Nginx {
    pub fn start() -> Nginx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("document root");
        let port = free_port();
        let d = dir.path().display();
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format counted '$status $body_bytes_sent "$http_range" "$http_if_match"';
    access_log {d}/access.log counted;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"#,
            root = root.display()
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).expect("nginx config");
        let child = Command::new(nginx_binary())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut server = Server(child);
        wait_for_port(port, &mut server.0, "nginx");
        Nginx {
            _server: server,
            dir,
            port,
        }
    }

    /// The directory nginx serves.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The URL of `name` in the served directory.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// The access log's lines so far.
    pub fn accesses(&self) -> Vec<Access> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let (status, rest) = line.split_once(' ').expect("status");
                let (bytes, rest) = rest.split_once(' ').expect("bytes");
                let mut quoted = rest.split('"').filter(|part| !part.trim().is_empty());
                Access {
                    status: status.parse().expect("status number"),
                    bytes: bytes.parse().expect("byte count"),
                    range: quoted.next().unwrap_or("-").to_owned(),
                    if_match: quoted.next().unwrap_or("-").to_owned(),
                }
            })
            .collect()
    }
}

/// moto's S3 server on a loopback port, run by the interpreter of the environment
/// `cargo xtask venv` makes (`MMAPPICKLE_MOTO_PYTHON`, set by `cargo xtask test`).
pub struct Moto {
    _server: Server,
    python: PathBuf,
    port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let python = std::env::var_os("MMAPPICKLE_MOTO_PYTHON")
            .map(PathBuf::from)
            .or_else(|| {
                let default =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-moto/bin/python");
                default.exists().then_some(default)
            })
            .unwrap_or_else(|| {
                prerequisites::stop_missing(
                    "no moto environment: the S3 tests run moto's server from the environment \
                     `cargo xtask venv` makes under target/py-moto (`cargo xtask test` sets \
                     MMAPPICKLE_MOTO_PYTHON; `.ci/run` runs it)",
                )
            });
        let port = free_port();
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto's server");
        let mut server = Server(child);
        wait_for_port(port, &mut server.0, "moto's server");
        Moto {
            _server: server,
            python,
            port,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` and uploads `files` (name, local path) into it, with boto3 (a
    /// dependency of moto).
    pub fn upload(&self, bucket: &str, files: &[(String, PathBuf)]) {
        let mut script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='test', aws_secret_access_key='test')\n\
             s3.create_bucket(Bucket='{bucket}')\n",
            self.endpoint()
        );
        for (name, path) in files {
            script += &format!(
                "s3.upload_file({:?}, '{bucket}', {name:?})\n",
                path.display().to_string()
            );
        }
        let status = Command::new(&self.python)
            .args(["-c", &script])
            .status()
            .expect("run boto3");
        assert!(status.success(), "boto3 upload failed");
    }

    /// Options pointing the S3 store at this server.
    pub fn options(&self) -> mmappickle_remote::RemoteOptions {
        mmappickle_remote::RemoteOptions::new()
            .store_config("aws_endpoint", &self.endpoint())
            .store_config("aws_allow_http", "true")
            .store_config("aws_access_key_id", "test")
            .store_config("aws_secret_access_key", "test")
            .store_config("aws_region", "us-east-1")
    }
}
