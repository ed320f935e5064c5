//! Task events to containerd: a ttrpc Events client of our own.
//!
//! The crate's publisher names each event through protobuf reflection
//! (`descriptor_dyn().full_name()`), which on first use builds the descriptors of every
//! event proto and its imports: about half a MiB of heap, and the reflection code in the
//! binary, for a name known at compile time. Here each event type says its name.

use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;

use containerd_shim::protos::events::task as ev;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::events::{Envelope, ForwardRequest};
use containerd_shim::protos::topics;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::protos::ttrpc::Client;
use containerd_shim::protos::EventsClient;

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

pub struct Publisher {
    client: EventsClient,
    namespace: String,
}

impl Publisher {
    /// Connect to containerd's ttrpc socket (TTRPC_ADDRESS, a path or unix://path).
    pub fn connect(address: &str, namespace: &str) -> Result<Publisher, String> {
        let path = address.trim_start_matches("unix://");
        let stream =
            UnixStream::connect(path).map_err(|e| format!("connect to containerd {path}: {e}"))?;
        // Client::new takes the descriptor over.
        let client = Client::new(stream.into_raw_fd())
            .map_err(|e| format!("ttrpc client for {path}: {e}"))?;
        Ok(Publisher {
            client: EventsClient::new(client),
            namespace: namespace.to_string(),
        })
    }

    pub fn publish<E: Event>(&self, event: &E) -> Result<(), String> {
        let value = event
            .write_to_bytes()
            .map_err(|e| format!("encode {}: {e}", E::TYPE))?;
        let req = ForwardRequest {
            envelope: MessageField::some(Envelope {
                timestamp: MessageField::some(crate::service::now()),
                namespace: self.namespace.clone(),
                topic: E::TOPIC.to_string(),
                event: MessageField::some(Any {
                    type_url: E::TYPE.to_string(),
                    value,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.client
            .forward(Context::default(), &req)
            .map(drop)
            .map_err(|e| format!("publish {}: {e}", E::TOPIC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
