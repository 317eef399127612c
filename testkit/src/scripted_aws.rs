//! A stand-in AWS endpoint for tests of retry paths the emulator cannot trigger.

use serde_json::Value;

/// A stand-in AWS endpoint that answers every request with the next scripted JSON response
/// (the last one again when they run out) and keeps the request bodies: the emulator never
/// fails single batch entries, so the retry of failed entries is tested against this.
pub struct ScriptedAws {
    pub endpoint: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl ScriptedAws {
    pub async fn start(content_type: &'static str, responses: Vec<Value>) -> ScriptedAws {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = std::sync::Arc::clone(&seen);
                let responses = responses.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        // One request: headers, then Content-Length bytes of body.
                        let head_end = loop {
                            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buffer.len() < head_end + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body: Value =
                            serde_json::from_slice(&buffer[head_end..head_end + length])
                                .unwrap_or(Value::Null);
                        buffer.drain(..head_end + length);
                        let response = {
                            let mut seen = seen.lock().expect("lock");
                            seen.push(body);
                            responses[(seen.len() - 1).min(responses.len() - 1)].to_string()
                        };
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{response}",
                            response.len()
                        );
                        if stream.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        ScriptedAws { endpoint, requests }
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(runledger::aws::https_client())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "scripted",
            ))
            .load()
            .await
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("lock").clone()
    }
}
