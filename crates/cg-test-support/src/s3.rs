//! [`S3Server`]: moto's S3-compatible server on loopback, one per test, with one bucket; and a
//! client for the test's own reads and writes of objects.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The credentials the tests' server accepts (moto accepts any).
const KEY_ID: &str = "consentgate-test";
const SECRET: &str = "consentgate-test-secret";

/// moto's server (from the venv `scripts/python-venv.sh moto` makes) on a free loopback port,
/// holding an empty bucket; killed on drop. Panics when it cannot start: object-storage tests
/// fail, never skip.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    port: u16,
    bucket: String,
    store: Arc<dyn ObjectStore>,
    log: tempfile::NamedTempFile,
}

impl S3Server {
    /// Starts a server and creates the bucket `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-venv.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg("moto")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/python-venv.sh moto");
        assert!(
            out.status.success(),
            "scripts/python-venv.sh moto failed: the object-storage tests need moto's server"
        );
        let python = String::from_utf8(out.stdout).expect("venv path");
        let python = std::path::Path::new(python.trim());
        let server = python.with_file_name("moto_server");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("its address").port()
        };
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("start moto_server");
        let store: Arc<dyn ObjectStore> = Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region("us-east-1")
                .with_access_key_id(KEY_ID)
                .with_secret_access_key(SECRET)
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_allow_http(true)
                .build()
                .expect("a client of the test server"),
        );
        let server = S3Server {
            child,
            port,
            bucket: bucket.to_owned(),
            store,
            log,
        };
        server.wait_ready();
        server.create_bucket();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server never listened on {}: {}",
                self.port,
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `PUT /bucket` (object_store does not create buckets). A server that listens may not
    /// answer yet (or drop the first connection while it starts): retried for up to 20 s.
    fn create_bucket(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let reply = (|| -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                write!(
                    s,
                    "PUT /{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.bucket, self.port
                )?;
                let mut reply = String::new();
                s.read_to_string(&mut reply)?;
                Ok(reply)
            })();
            match reply {
                Ok(r) if r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200") => return,
                other => assert!(
                    Instant::now() < deadline,
                    "creating bucket {}: {other:?}; server log: {}",
                    self.bucket,
                    std::fs::read_to_string(self.log.path()).unwrap_or_default()
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The environment a consentgate process reads the server from (`AWS_*`).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    /// Writes an object.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        self.run(
            self.store
                .put(&ObjectPath::from(key), PutPayload::from(bytes)),
        )
        .expect("put an object");
    }

    /// An object's bytes, `None` when there is none.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.run(async {
            let got = self.store.get(&ObjectPath::from(key)).await;
            if let Err(object_store::Error::NotFound { .. }) = got {
                return None;
            }
            let got = got.expect("get an object");
            Some(got.bytes().await.expect("read an object").to_vec())
        })
    }

    /// The keys under `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.run(async {
            let mut keys = Vec::new();
            let mut stream = self.store.list(Some(&ObjectPath::from(prefix)));
            while let Some(meta) = futures_lite::StreamExt::next(&mut stream).await {
                keys.push(meta.expect("list objects").location.to_string());
            }
            keys.sort();
            keys
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
