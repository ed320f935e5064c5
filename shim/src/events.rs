//! Task events to containerd: a ttrpc Events client of our own.
//!
//! The crate's publisher names each event through protobuf reflection
//! (`descriptor_dyn().full_name()`), which on first use builds the descriptors of every
//! event proto and its imports: about half a MiB of heap, and the reflection code in the
//! binary, for a name known at compile time. Here each event type says its name. And it
//! connected once: see [`Publisher`]. The connection is our own ttrpc client (wire.rs):
//! the crate's client polled its socket every 10 ms for the life of the shim.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use containerd_shim::protos::events::task as ev;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::events::{Envelope, ForwardRequest};
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc;

use crate::wire::Client;

/// An event containerd knows: its topic and its protobuf type name.
pub trait Event: Message {
    const TOPIC: &'static str;
    const TYPE: &'static str;
}

macro_rules! events {
    ($($ty:ident => $topic:ident),* $(,)?) => {
        $(impl Event for ev::$ty {
            const TOPIC: &'static str = topics::$topic;
            const TYPE: &'static str = concat!("containerd.events.", stringify!($ty));
        })*
    };
}

events! {
    TaskCreate => TASK_CREATE_EVENT_TOPIC,
    TaskStart => TASK_START_EVENT_TOPIC,
    TaskExit => TASK_EXIT_EVENT_TOPIC,
    TaskDelete => TASK_DELETE_EVENT_TOPIC,
    TaskExecAdded => TASK_EXEC_ADDED_EVENT_TOPIC,
    TaskExecStarted => TASK_EXEC_STARTED_EVENT_TOPIC,
    TaskPaused => TASK_PAUSED_EVENT_TOPIC,
    TaskResumed => TASK_RESUMED_EVENT_TOPIC,
    TaskOOM => TASK_OOM_EVENT_TOPIC,
}

/// How long containerd may take to answer one event before the connection is taken for
/// dead (a containerd that hangs must not hold the events behind it for ever).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// containerd's ttrpc service for events from shims.
const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";

/// Pauses between attempts while containerd is away: short at first (a restart takes a
/// second or two), then every few seconds for as long as it takes.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Events held while containerd is away, at most: past that the oldest go (the exits they
/// carry stay in the task table, served by State, Wait and Delete).
const QUEUE_MAX: usize = 1024;

/// Task events to containerd, in order, delivered at least once: `publish` queues the
/// event and returns at once (it is called with the task table locked); one thread sends
/// them, connecting again whenever the connection breaks. A TaskExit published while
/// containerd restarts or is down reaches the containerd that comes back; the crate's
/// publisher (and this one before) connected once, and every event after a containerd
/// restart was lost, a TaskExit too. The sending thread lives while there is something to
/// send: events come a few per container life, and an idle shim keeps no thread for them
/// (the connection stays open for the next one).
pub struct Publisher {
    shared: Arc<Shared>,
}

struct Shared {
    address: String,
    namespace: String,
    queue: Mutex<Queue>,
    /// Signalled when the queue becomes empty.
    changed: Condvar,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Envelope>,
    /// A thread is sending the events.
    sending: bool,
    /// The connection, while no thread sends.
    client: Option<Client>,
}

impl Publisher {
    /// The publisher for containerd's ttrpc socket (TTRPC_ADDRESS, a path or unix://path):
    /// it connects when it first has something to send.
    pub fn start(address: &str, namespace: &str) -> Result<Publisher, String> {
        let shared = Arc::new(Shared {
            address: address.trim_start_matches("unix://").to_string(),
            namespace: namespace.to_string(),
            queue: Mutex::default(),
            changed: Condvar::new(),
        });
        Ok(Publisher { shared })
    }

    pub fn publish<E: Event>(&self, event: &E) -> Result<(), String> {
        let value = event
            .write_to_bytes()
            .map_err(|e| format!("encode {}: {e}", E::TYPE))?;
        let envelope = Envelope {
            timestamp: MessageField::some(crate::service::now()),
            namespace: self.shared.namespace.clone(),
            topic: E::TOPIC.to_string(),
            event: MessageField::some(Any {
                type_url: E::TYPE.to_string(),
                value,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut q = self.shared.lock();
        if q.events.len() >= QUEUE_MAX {
            // The oldest after the head: the sender may have the head in flight, and takes
            // it off the queue once delivered.
            if let Some(old) = q.events.remove(1) {
                log::warn!(
                    "{QUEUE_MAX} events wait for containerd: {} dropped",
                    old.topic
                );
            }
        }
        q.events.push_back(envelope);
        if !q.sending {
            let (sender, client) = (self.shared.clone(), q.client.take());
            let spawned = std::thread::Builder::new()
                .name("events".into())
                // It encodes and sends small messages: a small stack will do.
                .stack_size(256 * 1024)
                .spawn(move || sender.send_all(client));
            match spawned {
                Ok(_) => q.sending = true,
                // The event waits for the next publish to try again.
                Err(e) => return Err(format!("start the event sender: {e}")),
            }
        }
        Ok(())
    }

    /// Wait until every queued event was delivered, for at most `within`: true if so.
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut q = self.shared.lock();
        while !q.events.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self
                .shared
                .changed
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Events not delivered yet.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.shared.lock().events.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send the queue's head until it is delivered (or refused), then the next: an event
    /// leaves the queue only then, so order holds and `flush` sees what is in flight. Once
    /// the queue is empty the thread ends, leaving the connection for the next sender.
    fn send_all(&self, mut client: Option<Client>) {
        let mut pause = RETRY_FIRST;
        // Whether the last attempt failed: the outage is logged once, and its end.
        let mut failing = false;
        loop {
            let envelope = {
                let mut q = self.lock();
                let Some(head) = q.events.front() else {
                    q.sending = false;
                    q.client = client;
                    return;
                };
                head.clone()
            };
            let topic = envelope.topic.clone();
            match self.forward(&mut client, envelope) {
                Ok(()) => {
                    if failing {
                        log::info!("events reach containerd again");
                    }
                    (failing, pause) = (false, RETRY_FIRST);
                    self.delivered();
                }
                // containerd answered, and refused the event: sending it again would not
                // change that, nor should it hold the events behind it.
                Err(ttrpc::Error::RpcStatus(s)) => {
                    log::error!("containerd refused {topic}: {}", s.message);
                    self.delivered();
                }
                Err(e) => {
                    if !failing {
                        log::warn!("publish {topic}: {e}; retrying until containerd answers");
                    }
                    // The connection is suspect: a new one for the next attempt.
                    (failing, client) = (true, None);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn forward(&self, client: &mut Option<Client>, envelope: Envelope) -> ttrpc::Result<()> {
        let c =
            match client {
                Some(c) => c,
                None => client.insert(Client::connect(&self.address).map_err(|e| {
                    ttrpc::Error::Others(format!("connect to {}: {e}", self.address))
                })?),
            };
        let req = ForwardRequest {
            envelope: MessageField::some(envelope),
            ..Default::default()
        };
        c.call(EVENTS_SERVICE, "Forward", &req, FORWARD_TIMEOUT)
            .map(drop)
    }

    fn delivered(&self) {
        let mut q = self.lock();
        q.events.pop_front();
        if q.events.is_empty() {
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::api::Empty;
    use containerd_shim::protos::protobuf::MessageFull;

    /// The names written here are the ones reflection gives (what containerd decodes).
    #[test]
    fn type_names_match_the_protos() {
        fn check<E: Event + MessageFull>() {
            assert_eq!(E::TYPE, E::descriptor().full_name());
        }
        check::<ev::TaskCreate>();
        check::<ev::TaskStart>();
        check::<ev::TaskExit>();
        check::<ev::TaskDelete>();
        check::<ev::TaskExecAdded>();
        check::<ev::TaskExecStarted>();
        check::<ev::TaskPaused>();
        check::<ev::TaskResumed>();
        check::<ev::TaskOOM>();
    }

    /// A fake containerd: the topics forwarded to it, in order; it refuses TaskPaused.
    #[derive(Default)]
    struct Fake(Mutex<Vec<String>>);

    impl containerd_shim::protos::Events for Fake {
        fn forward(&self, _: &ttrpc::TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
            let topic = req.envelope.topic.clone();
            if topic == topics::TASK_PAUSED_EVENT_TOPIC {
                let status = ttrpc::get_status(ttrpc::Code::INVALID_ARGUMENT, "refused");
                return Err(ttrpc::Error::RpcStatus(status));
            }
            self.0.lock().unwrap().push(topic);
            Ok(Empty::default())
        }
    }

    fn exit(id: &str, status: u32) -> ev::TaskExit {
        ev::TaskExit {
            container_id: id.into(),
            id: id.into(),
            exit_status: status,
            ..Default::default()
        }
    }

    /// Events published while containerd is not there (not started yet, restarting) wait
    /// for it, in order, and publish never blocks; an event containerd refuses does not
    /// hold the ones behind it.
    #[test]
    fn events_wait_for_containerd_in_order() {
        let dir = crate::test_dir::TestDir::new("events");
        let sock = dir.join("ttrpc.sock");
        let p = Publisher::start(&format!("unix://{}", sock.display()), "ns").unwrap();
        let t = Instant::now();
        p.publish(&ev::TaskStart {
            container_id: "c1".into(),
            ..Default::default()
        })
        .unwrap();
        p.publish(&ev::TaskPaused {
            container_id: "c1".into(),
            ..Default::default()
        })
        .unwrap();
        p.publish(&exit("c1", 7)).unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "publish blocked");
        assert!(!p.flush(Duration::from_millis(300)), "delivered to no one");
        assert_eq!(p.pending(), 3);
        // containerd comes (back).
        let fake = Arc::new(Fake::default());
        let mut server = ttrpc::Server::new()
            .bind(&format!("unix://{}", sock.display()))
            .unwrap()
            .register_service(containerd_shim::protos::create_events(fake.clone()));
        server.start().unwrap();
        assert!(p.flush(Duration::from_secs(10)), "{} left", p.pending());
        assert_eq!(
            *fake.0.lock().unwrap(),
            [
                topics::TASK_START_EVENT_TOPIC,
                topics::TASK_EXIT_EVENT_TOPIC
            ]
        );
        server.shutdown();
    }

    /// While containerd stays away, the queue holds QUEUE_MAX events: the oldest go, but
    /// never the head (the sender may have it in flight).
    #[test]
    fn a_full_queue_drops_the_oldest_but_the_head() {
        let p = Publisher::start("/nonexistent/rt-shim-events.sock", "ns").unwrap();
        for i in 0..QUEUE_MAX + 10 {
            p.publish(&exit(&format!("c{i}"), 0)).unwrap();
        }
        let q = &p.shared.lock().events;
        let id = |e: &Envelope| {
            let value = &e.event.as_ref().unwrap().value;
            ev::TaskExit::parse_from_bytes(value).unwrap().container_id
        };
        assert_eq!(q.len(), QUEUE_MAX);
        assert_eq!(id(&q[0]), "c0");
        assert_eq!(id(&q[1]), "c11");
        assert_eq!(id(&q[QUEUE_MAX - 1]), format!("c{}", QUEUE_MAX + 9));
    }
}
