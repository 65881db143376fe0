//! A minimal websocket client (RFC 6455) for the ASGI tests: it opens a websocket through nginx
//! on `127.0.0.1:PORT`, sends text messages and reads text messages and the close frame, which
//! is all a test needs to see an echo answered and a socket closed by a stopping release.
//! Blocking, one connection, no extensions, no fragmentation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// RFC 6455's sample key and the `Sec-WebSocket-Accept` a server must answer to it (section
/// 1.3): a fixed key is as good as a random one for a client that proxies nothing.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    /// A close frame, with its status code when it has one.
    Close(Option<u16>),
}

/// An open websocket.
pub struct WebSocket {
    reader: BufReader<TcpStream>,
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

impl WebSocket {
    /// Opens `ws://127.0.0.1:PORT/PATH`; fails unless the server switches protocols with the
    /// right accept key. Reads wait at most `timeout`.
    pub fn connect(port: u16, path: &str, timeout: Duration) -> std::io::Result<WebSocket> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )?;
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(bad(format!("connection closed in the handshake: {head:?}")));
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let switched = head.first().is_some_and(|l| l.contains(" 101 "));
        let accepted = head.iter().any(|l| {
            l.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
            })
        });
        if !(switched && accepted) {
            return Err(bad(format!("no websocket handshake: {head:?}")));
        }
        Ok(WebSocket { reader })
    }

    /// Sends `text` as one masked text frame.
    pub fn send(&mut self, text: &str) -> std::io::Result<()> {
        let payload = text.as_bytes();
        let mut frame = vec![0x81];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => return Err(bad("a test message longer than 64 KiB")),
        }
        let mask = [0x5a, 0x1f, 0xc3, 0x07];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.reader.get_mut().write_all(&frame)
    }

    /// The next text or close frame (pings and pongs are skipped).
    pub fn receive(&mut self) -> std::io::Result<Message> {
        loop {
            let mut head = [0u8; 2];
            self.reader.read_exact(&mut head)?;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.reader.read_exact(&mut n)?;
                    u64::from(u16::from_be_bytes(n))
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.reader.read_exact(&mut n)?;
                    u64::from_be_bytes(n)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; usize::try_from(len).map_err(|_| bad("frame too long"))?];
            self.reader.read_exact(&mut payload)?;
            match head[0] & 0x0f {
                0x1 => {
                    return String::from_utf8(payload)
                        .map(Message::Text)
                        .map_err(|_| bad("a text frame that is not UTF-8"))
                }
                0x8 => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Message::Close(code));
                }
                0x9 | 0xa => continue,
                opcode => return Err(bad(format!("unexpected frame, opcode {opcode:#x}"))),
            }
        }
    }
}
