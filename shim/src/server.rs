//! The shim's ttrpc server: containerd's Task calls, served with as few threads as the
//! calls need. The main thread accepts connections (containerd makes one per shim, or one
//! again after a restart); each connection has a thread reading its requests, and each
//! request gets a thread of its own for as long as it is handled, so no call waits for
//! another: `Wait` holds its thread for the life of the process it waits for while `Start`,
//! `State`, `Kill` and the others are served beside it. An idle shim with one container
//! thus keeps two server threads (the connection's reader and the `Wait`), where the ttrpc
//! crate's server kept a listener, a reaper, and per connection a reader, a writer, a
//! supervisor and a pool of 3 to 5 workers that grew by three whenever one was left idle.
//!
//! Responses are written whole under the connection's lock by the thread that made them.
//! Requests go to a [`Dispatch`], which decodes each with its own type: the generated
//! `create_task` table of handlers (one boxed handler per method, each decoding, calling
//! and encoding through a channel) was about 75 KB of the binary.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::ttrpc::proto::MESSAGE_TYPE_REQUEST;
use containerd_shim::protos::ttrpc::TtrpcContext;
use containerd_shim::protos::ttrpc::{self, Code, MessageHeader, Request, Response};
use nix::fcntl::OFlag;

use crate::wire::{read_frame, response_frame, status_response};

/// What a server serves: the response payload of a call, from its request payload.
pub trait Dispatch: Send + Sync + 'static {
    fn call(
        &self,
        ctx: &TtrpcContext,
        service: &str,
        method: &str,
        payload: &[u8],
    ) -> ttrpc::Result<Vec<u8>>;
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
/// answered (its response is on the wire before the shim goes).
pub struct Exit {
    requested: AtomicBool,
    wake_r: OwnedFd,
    wake_w: OwnedFd,
}

impl Exit {
    pub fn new() -> io::Result<Exit> {
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Exit {
            requested: AtomicBool::new(false),
            wake_r,
            wake_w,
        })
    }

    /// Exit once the current call is answered.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    fn wake_if_requested(&self) {
        if self.requested.load(Ordering::SeqCst) {
            let _ = nix::unistd::write(&self.wake_w, b"x");
        }
    }
}

/// Serve `methods` on `listener` until an exit is requested.
pub fn serve(listener: UnixListener, methods: Arc<dyn Dispatch>, exit: &Arc<Exit>) {
    loop {
        let ready = crate::wait::poll_in(&[listener.as_fd(), exit.wake_r.as_fd()], None);
        if !ready[1].is_empty() {
            return;
        }
        if ready[0].is_empty() {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                let (methods, exit) = (methods.clone(), exit.clone());
                let spawned = std::thread::Builder::new()
                    .name("ttrpc-conn".into())
                    // It reads frames and starts threads: a small stack will do.
                    .stack_size(128 * 1024)
                    .spawn(move || read_requests(stream, &methods, &exit));
                if let Err(e) = spawned {
                    // The connection is dropped: containerd sees it closed.
                    log::error!("ttrpc: no thread for a connection: {e}");
                }
            }
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

/// Read a connection's requests until it closes, each handled on a thread of its own.
fn read_requests(stream: UnixStream, methods: &Arc<dyn Dispatch>, exit: &Arc<Exit>) {
    let fd = stream.as_raw_fd();
    let writer = match stream.try_clone() {
        Ok(w) => Arc::new(Mutex::new(w)),
        Err(e) => {
            log::error!("ttrpc: {e}");
            return;
        }
    };
    let mut reader = stream;
    loop {
        let (header, payload) = match read_frame(&mut reader) {
            Ok(f) => f,
            // Closed (containerd went away, or is done with us) or broken.
            Err(_) => return,
        };
        if header.type_ != MESSAGE_TYPE_REQUEST {
            continue;
        }
        let payload = match payload {
            Ok(p) => p,
            Err(len) => {
                let msg = format!(
                    "message length {len} exceeds the maximum message size of {}",
                    ttrpc::proto::MESSAGE_LENGTH_MAX
                );
                let res = status_response(Code::RESOURCE_EXHAUSTED, msg);
                respond(&writer, &response_frame(header.stream_id, &res), exit);
                continue;
            }
        };
        let (methods, writer2, exit2) = (methods.clone(), writer.clone(), exit.clone());
        let spawned = std::thread::Builder::new()
            .name("ttrpc-call".into())
            .spawn(move || handle(fd, header, &payload, &*methods, &writer2, &exit2));
        if let Err(e) = spawned {
            let res = status_response(Code::RESOURCE_EXHAUSTED, format!("no thread: {e}"));
            respond(&writer, &response_frame(header.stream_id, &res), exit);
        }
    }
}

/// One request: decoded, handed to its method, answered.
fn handle(
    fd: i32,
    header: MessageHeader,
    payload: &[u8],
    methods: &dyn Dispatch,
    writer: &Mutex<UnixStream>,
    exit: &Exit,
) {
    let id = header.stream_id;
    let req = match Request::parse_from_bytes(payload) {
        Ok(r) => r,
        Err(e) => {
            let res = status_response(Code::INVALID_ARGUMENT, e.to_string());
            return respond(writer, &response_frame(id, &res), exit);
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
    let res = match methods.call(&ctx, &req.service, &req.method, &req.payload) {
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
        Err(e) => unknown(format!("/{}/{}: {e:?}", req.service, req.method)),
    };
    respond(writer, &response_frame(id, &res), exit);
}

fn unknown(msg: String) -> Response {
    status_response(Code::UNKNOWN, msg)
}

fn respond(writer: &Mutex<UnixStream>, frame: &[u8], exit: &Exit) {
    {
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        // A connection that broke: its reader sees it too and ends it.
        let _ = io::Write::write_all(&mut *w, frame);
    }
    exit.wake_if_requested();
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
    }

    impl Dispatch for Blocking {
        fn call(
            &self,
            _: &TtrpcContext,
            service: &str,
            method: &str,
            payload: &[u8],
        ) -> ttrpc::Result<Vec<u8>> {
            if (service, method) != ("containerd.services.events.ttrpc.v1.Events", "Forward") {
                return Err(no_such_method(service, method));
            }
            unary(payload, |req| self.forward(req))
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
    /// server returns once an exit is requested and a call answered.
    #[test]
    fn calls_are_served_side_by_side() {
        let dir = std::env::temp_dir().join(format!("rt-shim-server-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let service = Arc::new(Blocking {
            answered: Mutex::new(0),
            changed: std::sync::Condvar::new(),
        });
        let methods: Arc<dyn Dispatch> = service.clone();
        let exit = Arc::new(Exit::new().unwrap());
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
        exit.request();
        assert!(forward(&mut c, 0).is_ok());
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
