//! The shim's ttrpc server: containerd's Task calls, served with as few threads as the
//! calls need. The main thread accepts connections (containerd makes one per shim, or one
//! again after a restart) and reads their requests; each request gets a thread of its own
//! for as long as it is handled, so no call waits for another. A call may also park its
//! [`Reply`] and let its thread go: `Wait` does, until the process it waits for exits, so
//! an idle shim keeps no server thread at all besides the main one, where the ttrpc
//! crate's server kept a listener, a reaper, and per connection a reader, a writer, a
//! supervisor and a pool of 3 to 5 workers that grew by three whenever one was left idle,
//! and one more blocked for each `Wait`.
//!
//! Responses are written whole under the connection's lock by whoever answers.
//! Requests go to a [`Dispatch`], which decodes each with its own type: the generated
//! `create_task` table of handlers (one boxed handler per method, each decoding, calling
//! and encoding through a channel) was about 75 KB of the binary.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::ttrpc::proto::MESSAGE_TYPE_REQUEST;
use containerd_shim::protos::ttrpc::TtrpcContext;
use containerd_shim::protos::ttrpc::{self, Code, MessageHeader, Request, Response};
use nix::fcntl::OFlag;

use crate::wire::{read_frame, response_frame, status_response};

/// What a server serves: each call answered through its [`Reply`], at once or later.
pub trait Dispatch: Send + Sync + 'static {
    fn call(&self, ctx: &TtrpcContext, service: &str, method: &str, payload: &[u8], reply: Reply);
}

/// A unary call: `payload` decoded as `Req`, handed to `f`, its `Res` encoded.
pub fn unary<Req: Message, Res: Message>(
    payload: &[u8],
    f: impl FnOnce(Req) -> ttrpc::Result<Res>,
) -> ttrpc::Result<Vec<u8>> {
    let req = Req::parse_from_bytes(payload).map_err(|e| {
        ttrpc::Error::RpcStatus(ttrpc::get_status(Code::INVALID_ARGUMENT, e.to_string()))
    })?;
    f(req)?
        .write_to_bytes()
        .map_err(|e| ttrpc::Error::Others(e.to_string()))
}

/// The error for a method this server does not have.
pub fn no_such_method(service: &str, method: &str) -> ttrpc::Error {
    let msg = format!("/{service}/{method} does not exist");
    ttrpc::Error::RpcStatus(ttrpc::get_status(Code::INVALID_ARGUMENT, msg))
}

/// The shim's way out: `Shutdown` requests it, and the server returns once that call was
/// answered (its response is on the wire before the shim goes; the answer of another call
/// finishing meanwhile does not count).
pub struct Exit {
    wake_r: OwnedFd,
    wake_w: OwnedFd,
}

thread_local! {
    /// The call handled on this thread requested the exit.
    static EXIT_REQUESTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Exit {
    pub fn new() -> io::Result<Exit> {
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Exit { wake_r, wake_w })
    }

    /// Exit once the call being handled (on this thread) is answered.
    pub fn request(&self) {
        EXIT_REQUESTED.with(|r| r.set(true));
    }

    fn wake_if_requested_here(&self) {
        if EXIT_REQUESTED.with(|r| r.replace(false)) {
            let _ = nix::unistd::write(&self.wake_w, b"x");
        }
    }
}

/// How long a request may take to arrive whole once it began: a client that stops halfway
/// loses its connection rather than hold the server.
const FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection: our end for reading (the main thread's) and, shared with whoever answers,
/// for writing.
struct Conn {
    reader: UnixStream,
    out: Arc<Out>,
}

struct Out {
    writer: Mutex<UnixStream>,
}

/// The answer to one call, to be sent once. Dropped unsent, it sends an error: no call is
/// left unanswered.
pub struct Reply {
    id: u32,
    out: Option<Arc<Out>>,
}

impl Reply {
    pub fn send(mut self, result: ttrpc::Result<Vec<u8>>) {
        if let Some(out) = self.out.take() {
            out.respond(self.id, result);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            let status = ttrpc::get_status(Code::UNKNOWN, "the call was given up");
            out.respond(self.id, Err(ttrpc::Error::RpcStatus(status)));
        }
    }
}

impl Out {
    fn respond(&self, id: u32, result: ttrpc::Result<Vec<u8>>) {
        let res = match result {
            Ok(payload) => {
                let mut res = status_response(Code::OK, String::new());
                res.payload = payload;
                res
            }
            Err(ttrpc::Error::RpcStatus(s)) => {
                let mut res = Response::new();
                res.set_status(s);
                res
            }
            Err(e) => status_response(Code::UNKNOWN, format!("{e:?}")),
        };
        let frame = response_frame(id, &res);
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // A connection that broke: the main thread sees it too and drops it.
        let _ = io::Write::write_all(&mut *w, &frame);
    }
}

/// Serve `methods` on `listener` until an exit is requested: accept connections and read
/// their requests, on the calling thread.
pub fn serve(listener: UnixListener, methods: Arc<dyn Dispatch>, exit: &Arc<Exit>) {
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        let mut fds = vec![exit.wake_r.as_fd(), listener.as_fd()];
        fds.extend(conns.iter().map(|c| c.reader.as_fd()));
        let ready = crate::wait::poll_in(&fds, None);
        drop(fds);
        if !ready[0].is_empty() {
            return;
        }
        // From the last: a connection dropped is replaced by one already looked at.
        for i in (0..conns.len()).rev() {
            if !ready[2 + i].is_empty() && !read_request(&mut conns[i], &methods, exit) {
                conns.swap_remove(i);
            }
        }
        if !ready[1].is_empty() {
            match accept(&listener) {
                Ok(c) => conns.push(c),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("ttrpc: accept: {e}");
                    // Out of descriptors or memory: this lasts a while, and the socket stays
                    // readable; do not spin on it.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
    }
}

fn accept(listener: &UnixListener) -> io::Result<Conn> {
    let (reader, _) = listener.accept()?;
    reader.set_read_timeout(Some(FRAME_TIMEOUT))?;
    let writer = Mutex::new(reader.try_clone()?);
    Ok(Conn {
        reader,
        out: Arc::new(Out { writer }),
    })
}

/// Read one frame off a readable connection and start its call; false once the connection
/// is closed or broken.
fn read_request(conn: &mut Conn, methods: &Arc<dyn Dispatch>, exit: &Arc<Exit>) -> bool {
    let (header, payload) = match read_frame(&mut conn.reader) {
        Ok(f) => f,
        // Closed (containerd went away, or is done with us), broken, or stalled.
        Err(_) => return false,
    };
    if header.type_ != MESSAGE_TYPE_REQUEST {
        return true;
    }
    let reply = Reply {
        id: header.stream_id,
        out: Some(conn.out.clone()),
    };
    let payload = match payload {
        Ok(p) => p,
        Err(len) => {
            let msg = format!(
                "message length {len} exceeds the maximum message size of {}",
                ttrpc::proto::MESSAGE_LENGTH_MAX
            );
            let status = ttrpc::get_status(Code::RESOURCE_EXHAUSTED, msg);
            reply.send(Err(ttrpc::Error::RpcStatus(status)));
            return true;
        }
    };
    let fd = conn.reader.as_raw_fd();
    let (methods, exit) = (methods.clone(), exit.clone());
    // The reply goes into the thread; if it cannot start, the reply dropped with its
    // closure answers with an error.
    let spawned = std::thread::Builder::new()
        .name("ttrpc-call".into())
        .spawn(move || {
            handle(fd, header, &payload, &*methods, reply);
            exit.wake_if_requested_here();
        });
    if let Err(e) = spawned {
        log::error!("ttrpc: no thread for a call: {e}");
    }
    true
}

/// One request: decoded and handed to its method.
fn handle(fd: i32, header: MessageHeader, payload: &[u8], methods: &dyn Dispatch, reply: Reply) {
    let req = match Request::parse_from_bytes(payload) {
        Ok(r) => r,
        Err(e) => {
            let status = ttrpc::get_status(Code::INVALID_ARGUMENT, e.to_string());
            return reply.send(Err(ttrpc::Error::RpcStatus(status)));
        }
    };
    let ctx = TtrpcContext {
        fd,
        cancel_rx: crossbeam_channel::never(),
        mh: header,
        // Unused: responses are not sent through the context.
        res_tx: std::sync::mpsc::channel().0,
        metadata: ttrpc::context::from_pb(&req.metadata),
        timeout_nano: req.timeout_nano,
    };
    methods.call(&ctx, &req.service, &req.method, &req.payload, reply);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Client;
    use containerd_shim::protos::api::Empty;
    use containerd_shim::protos::events::task::TaskExit;
    use containerd_shim::protos::shim::events::ForwardRequest;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A fake Events service: `Forward` of a TaskExit with exit status N blocks until N
    /// other calls were answered, so calls must be served side by side; status 99 is
    /// refused.
    struct Blocking {
        answered: Mutex<u32>,
        changed: std::sync::Condvar,
        exit: Arc<Exit>,
    }

    impl Dispatch for Blocking {
        fn call(
            &self,
            _: &TtrpcContext,
            service: &str,
            method: &str,
            payload: &[u8],
            reply: Reply,
        ) {
            match (service, method) {
                ("containerd.services.events.ttrpc.v1.Events", "Forward") => {
                    reply.send(unary(payload, |req| self.forward(req)))
                }
                // Dropped unanswered: the error the drop sends.
                ("test", "Drop") => drop(reply),
                ("test", "Shutdown") => {
                    self.exit.request();
                    reply.send(Ok(Vec::new()))
                }
                _ => reply.send(Err(no_such_method(service, method))),
            }
        }
    }

    impl Blocking {
        fn forward(&self, req: ForwardRequest) -> ttrpc::Result<Empty> {
            let value = &req.envelope.event.value;
            let status = TaskExit::parse_from_bytes(value).map_or(0, |e| e.exit_status);
            let wait_for = if status == 99 { 0 } else { status };
            let mut n = self.answered.lock().unwrap();
            while *n < wait_for {
                n = self.changed.wait(n).unwrap();
            }
            *n += 1;
            self.changed.notify_all();
            if status == 99 {
                return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                    Code::NOT_FOUND,
                    "no such thing",
                )));
            }
            Ok(Empty::default())
        }
    }

    fn forward(c: &mut Client, status: u32) -> ttrpc::Result<Vec<u8>> {
        let exit = TaskExit {
            exit_status: status,
            ..Default::default()
        };
        let mut req = ForwardRequest::default();
        req.envelope
            .mut_or_insert_default()
            .event
            .mut_or_insert_default()
            .value = exit.write_to_bytes().unwrap();
        c.call(
            "containerd.services.events.ttrpc.v1.Events",
            "Forward",
            &req,
            Duration::from_secs(10),
        )
    }

    /// A call that blocks (as `Wait` does) does not hold the ones after it, on the same
    /// connection or another; errors and unknown methods come back as statuses; the
    /// server returns once a call requested the exit and was answered.
    #[test]
    fn calls_are_served_side_by_side() {
        let dir = crate::test_dir::TestDir::new("server");
        let sock = dir.join("s.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let exit = Arc::new(Exit::new().unwrap());
        let service = Arc::new(Blocking {
            answered: Mutex::new(0),
            changed: std::sync::Condvar::new(),
            exit: exit.clone(),
        });
        let methods: Arc<dyn Dispatch> = service.clone();
        let server = {
            let exit = exit.clone();
            std::thread::spawn(move || serve(listener, methods, &exit))
        };
        let path = sock.to_str().unwrap().to_string();
        // Blocks until two other calls were answered.
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(&p).unwrap();
            let _ = tx.send(forward(&mut c, 2).is_ok());
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut c = Client::connect(&path).unwrap();
        // On its own connection, the same one twice: answered while the first waits.
        assert!(forward(&mut c, 0).is_ok());
        assert!(forward(&mut c, 0).is_ok());
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
        match forward(&mut c, 99) {
            Err(ttrpc::Error::RpcStatus(s)) => assert_eq!(s.message, "no such thing"),
            other => panic!("{other:?}"),
        }
        let mut req = ForwardRequest::default();
        req.envelope.mut_or_insert_default();
        match c.call("nope.Service", "Nothing", &req, Duration::from_secs(5)) {
            Err(ttrpc::Error::RpcStatus(s)) => assert!(s.message.contains("does not exist")),
            other => panic!("{other:?}"),
        }
        match c.call("test", "Drop", &req, Duration::from_secs(5)) {
            Err(ttrpc::Error::RpcStatus(s)) => assert!(s.message.contains("given up")),
            other => panic!("{other:?}"),
        }
        // Answered, then the server is gone.
        let last = c.call("test", "Shutdown", &req, Duration::from_secs(5));
        assert!(last.is_ok(), "{last:?}");
        server.join().unwrap();
    }
}
