//! ttrpc's framing on a unix stream, for our own client (events.rs) and server (server.rs):
//! a 10-byte header (payload length and stream id, big-endian u32s; message type; flags)
//! and a protobuf payload, a `ttrpc.Request` or `ttrpc.Response`.
//!
//! The ttrpc crate's synchronous client and server cost threads: its client has a sender
//! and a receiver thread, and the receiver wakes every 10 ms to poll its socket for as long
//! as the client lives (every shim, 100 times a second, for the life of its containers);
//! its server keeps a listener, a reaper, and per connection a reader, a writer, a
//! supervisor and a pool of 3 to 5 idle workers. Here a call is a write and a blocking
//! read on the caller's thread, and a frame is read or written by whoever needs it.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::ttrpc::proto::{
    MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};
use containerd_shim::protos::ttrpc::{self, Code, MessageHeader, Request, Response};

/// One frame off the stream: its header and its payload; an error if the stream ended or
/// failed. A payload over ttrpc's limit is read and dropped: `Err(length)` in its place.
pub fn read_frame(r: &mut impl Read) -> io::Result<(MessageHeader, Result<Vec<u8>, usize>)> {
    let mut h = [0u8; MESSAGE_HEADER_LENGTH];
    r.read_exact(&mut h)?;
    let header = MessageHeader::from(&h);
    let len = header.length as usize;
    if len > MESSAGE_LENGTH_MAX {
        io::copy(&mut r.take(len as u64), &mut io::sink())?;
        return Ok((header, Err(len)));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((header, Ok(payload)))
}

/// A frame as one buffer, written with one call: frames from several threads never
/// interleave as long as each goes out whole (the writers share a lock).
pub fn frame(stream_id: u32, type_: u8, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(MESSAGE_HEADER_LENGTH + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(&stream_id.to_be_bytes());
    buf.extend_from_slice(&[type_, 0]);
    buf.extend_from_slice(payload);
    buf
}

/// The response frame to request `stream_id`.
pub fn response_frame(stream_id: u32, res: &Response) -> Vec<u8> {
    let payload = res.write_to_bytes().unwrap_or_default();
    if payload.len() > MESSAGE_LENGTH_MAX {
        let msg = format!(
            "response of {} bytes exceeds the maximum message size of {MESSAGE_LENGTH_MAX}",
            payload.len()
        );
        return response_frame(stream_id, &status_response(Code::RESOURCE_EXHAUSTED, msg));
    }
    frame(stream_id, MESSAGE_TYPE_RESPONSE, &payload)
}

pub fn status_response(code: Code, msg: String) -> Response {
    let mut res = Response::new();
    res.set_status(ttrpc::get_status(code, msg));
    res
}

/// A ttrpc client connection for one caller at a time: `call` writes the request and
/// reads until its response, on the caller's thread (no thread of its own, nothing that
/// wakes while no call is made).
pub struct Client {
    stream: UnixStream,
    next_id: u32,
}

impl Client {
    pub fn connect(path: &str) -> io::Result<Client> {
        Ok(Client {
            stream: UnixStream::connect(path)?,
            next_id: 1,
        })
    }

    /// `service`/`method` with `req`; the answer within `timeout` (also sent to the server
    /// as the call's deadline). An error status is `ttrpc::Error::RpcStatus`; anything
    /// else (no answer in time, a broken connection) leaves the connection unusable.
    pub fn call(
        &mut self,
        service: &str,
        method: &str,
        req: &impl Message,
        timeout: Duration,
    ) -> ttrpc::Result<Vec<u8>> {
        let others = |e: io::Error| ttrpc::Error::Others(format!("{service}/{method}: {e}"));
        let mut r = Request::new();
        r.service = service.to_string();
        r.method = method.to_string();
        r.timeout_nano = timeout.as_nanos() as i64;
        r.payload = req
            .write_to_bytes()
            .map_err(|e| ttrpc::Error::Others(e.to_string()))?;
        let payload = r
            .write_to_bytes()
            .map_err(|e| ttrpc::Error::Others(e.to_string()))?;
        let id = self.next_id;
        // Client streams are odd.
        self.next_id = self.next_id.wrapping_add(2);
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(others)?;
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(others)?;
        self.stream
            .write_all(&frame(id, MESSAGE_TYPE_REQUEST, &payload))
            .map_err(others)?;
        loop {
            let (header, body) = read_frame(&mut self.stream).map_err(others)?;
            // A late answer to an earlier call that timed out cannot come: that
            // connection was given up. Anything else but our response is skipped.
            if header.stream_id != id || header.type_ != MESSAGE_TYPE_RESPONSE {
                continue;
            }
            let body = body.map_err(|n| others(io::Error::other(format!("{n}-byte response"))))?;
            let res = Response::parse_from_bytes(&body)
                .map_err(|e| ttrpc::Error::Others(format!("{service}/{method}: {e}")))?;
            let status = res.status.clone().unwrap_or_default();
            if status.code.value() != Code::OK as i32 {
                return Err(ttrpc::Error::RpcStatus(status));
            }
            return Ok(res.payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = frame(7, MESSAGE_TYPE_REQUEST, b"abc");
        assert_eq!(f.len(), MESSAGE_HEADER_LENGTH + 3);
        let (h, body) = read_frame(&mut &f[..]).unwrap();
        assert_eq!(
            (h.length, h.stream_id, h.type_, h.flags),
            (3, 7, MESSAGE_TYPE_REQUEST, 0)
        );
        assert_eq!(body.unwrap(), b"abc");
    }

    /// A frame over the limit is skipped whole: the next one reads fine.
    #[test]
    fn an_oversized_frame_is_skipped() {
        let mut f = Vec::new();
        f.extend_from_slice(&((MESSAGE_LENGTH_MAX + 1) as u32).to_be_bytes());
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&[MESSAGE_TYPE_REQUEST, 0]);
        f.resize(f.len() + MESSAGE_LENGTH_MAX + 1, 0);
        f.extend_from_slice(&frame(3, MESSAGE_TYPE_REQUEST, b"x"));
        let mut r = &f[..];
        assert_eq!(read_frame(&mut r).unwrap().1, Err(MESSAGE_LENGTH_MAX + 1));
        let (h, body) = read_frame(&mut r).unwrap();
        assert_eq!((h.stream_id, body.unwrap()), (3, b"x".to_vec()));
    }
}
