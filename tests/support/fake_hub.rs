//! A loopback HTTP server speaking the hub endpoints hf-hub calls: repository info
//! (`/api/{models,datasets}/ORG/NAME/revision/REV`) and file downloads
//! (`[/datasets]/ORG/NAME/resolve/REV/FILE`) with `Range` requests, ETag, `X-Repo-Commit` and
//! `Content-Range`. It can cut a transfer off halfway, once, and answer 401 or 500 for a repo.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
pub struct Hub {
    /// "models/org/name" or "datasets/org/name" → files.
    pub repos: HashMap<String, Vec<(String, Vec<u8>)>>,
    /// Repo key → forced HTTP status.
    pub status: HashMap<String, u16>,
    /// Files to cut off halfway on their first full download.
    pub cut_once: Vec<String>,
    pub requests: Vec<Request>,
}

pub struct FakeHub {
    pub url: String,
    pub state: Arc<Mutex<Hub>>,
}

impl FakeHub {
    pub fn start(hub: Hub) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(hub));
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        FakeHub { url, state }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn etag(data: &[u8]) -> String {
    // A stable content hash (FNV-1a, hex) stands in for the hub's sha256 ETag.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

fn serve(mut stream: TcpStream, state: &Mutex<Hub>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mut range, mut authorization) = (None, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "range" => range = Some(v.trim().to_string()),
            "authorization" => authorization = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let mut hub = state.lock().unwrap();
    hub.requests.push(Request {
        path: path.clone(),
        range: range.clone(),
        authorization,
    });
    let respond = |stream: &mut TcpStream,
                   status: &str,
                   headers: &[(&str, String)],
                   body: &[u8],
                   send: usize| {
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body[..send.min(body.len())]);
        let _ = stream.flush();
    };
    // /api/{kind}/{org}/{name}/revision/{rev}
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (key, rest): (String, Vec<&str>) = if parts.first() == Some(&"api") && parts.len() >= 6 {
        (
            format!("{}/{}/{}", parts[1], parts[2], parts[3]),
            parts[4..].to_vec(),
        )
    } else if parts.first() == Some(&"datasets") && parts.len() >= 5 {
        (
            format!("datasets/{}/{}", parts[1], parts[2]),
            parts[3..].to_vec(),
        )
    } else if parts.len() >= 4 {
        (
            format!("models/{}/{}", parts[0], parts[1]),
            parts[2..].to_vec(),
        )
    } else {
        respond(
            &mut stream,
            "404 Not Found",
            &[],
            b"{\"error\":\"not found\"}",
            usize::MAX,
        );
        return;
    };
    if let Some(code) = hub.status.get(&key) {
        let text = match code {
            401 => "401 Unauthorized",
            403 => "403 Forbidden",
            _ => "500 Internal Server Error",
        };
        respond(
            &mut stream,
            text,
            &[],
            b"{\"error\":\"refused\"}",
            usize::MAX,
        );
        return;
    }
    let Some(files) = hub.repos.get(&key).cloned() else {
        respond(
            &mut stream,
            "404 Not Found",
            &[("X-Error-Code", "RepoNotFound".into())],
            b"{\"error\":\"Repository not found\"}",
            usize::MAX,
        );
        return;
    };
    if parts[0] == "api" {
        let siblings: Vec<String> = files
            .iter()
            .map(|(n, _)| format!("{{\"rfilename\":{:?}}}", n))
            .collect();
        let body = format!(
            "{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}",
            siblings.join(",")
        );
        respond(
            &mut stream,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
            usize::MAX,
        );
        return;
    }
    // resolve/{rev}/{file…}
    let file = rest.iter().skip(2).cloned().collect::<Vec<_>>().join("/");
    let Some((_, data)) = files.iter().find(|(n, _)| *n == file) else {
        respond(
            &mut stream,
            "404 Not Found",
            &[("X-Error-Code", "EntryNotFound".into())],
            b"{}",
            usize::MAX,
        );
        return;
    };
    let start: usize = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let end_inclusive = if range.as_deref() == Some("bytes=0-0") {
        0
    } else {
        data.len() - 1
    };
    let body = &data[start.min(data.len())..=end_inclusive.max(start).min(data.len() - 1)];
    let headers = [
        ("ETag", format!("\"{}\"", etag(data))),
        ("X-Repo-Commit", COMMIT.to_string()),
        (
            "Content-Range",
            format!("bytes {start}-{}/{}", start + body.len() - 1, data.len()),
        ),
    ];
    let mut send = usize::MAX;
    if range.as_deref() != Some("bytes=0-0")
        && start == 0
        && let Some(i) = hub.cut_once.iter().position(|f| *f == file)
    {
        hub.cut_once.remove(i);
        send = body.len() / 2;
    }
    drop(hub);
    respond(&mut stream, "206 Partial Content", &headers, body, send);
    // Leave the read side drained so a cut looks like a dropped connection, not a reset.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = reader.read(&mut [0u8; 1]);
}
