//! The control queue into a plugin's task: service calls and stop requests, and the service
//! handler that forwards calls there.
//!
//! Service calls to a plugin travel through this small queue, beside its event mailbox, so the
//! plugin instance is only ever touched by its own task.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use homecore::{ServiceCall, ServiceError, ServiceHandler, ServiceName};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::{HostError, PluginError};

/// Messages to a plugin's task other than events.
pub(crate) enum Control {
    /// Run one of the plugin's services.
    CallService {
        call: Box<ServiceCall>,
        reply: oneshot::Sender<Result<Option<Value>, PluginError>>,
    },
    /// Tear the plugin down and end the task.
    Stop { reply: oneshot::Sender<()> },
}

pub(crate) type ControlSender = mpsc::Sender<Control>;

/// The handler registered for a plugin's service: forwards calls to the plugin's task.
pub(crate) struct PluginServiceHandler {
    domain: Arc<str>,
    tx: ControlSender,
    timeout: Duration,
}

impl PluginServiceHandler {
    pub(crate) fn new(domain: Arc<str>, tx: ControlSender, timeout: Duration) -> Self {
        Self {
            domain,
            tx,
            timeout,
        }
    }

    fn failed(&self, name: &ServiceName, err: impl Into<PluginError>) -> ServiceError {
        ServiceError::Failed {
            name: name.clone(),
            source: Box::new(err.into()),
        }
    }
}

#[async_trait]
impl ServiceHandler for PluginServiceHandler {
    async fn call(&self, call: ServiceCall) -> Result<Option<Value>, ServiceError> {
        let name = call.name.clone();
        let not_running = || HostError::NotRunning {
            plugin: self.domain.to_string(),
        };
        let (reply, answer) = oneshot::channel();
        let exchange = async {
            self.tx
                .send(Control::CallService {
                    call: Box::new(call),
                    reply,
                })
                .await
                .map_err(|_| PluginError::Host(not_running()))?;
            answer.await.map_err(|_| PluginError::Host(not_running()))?
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(self.failed(&name, err)),
            Err(_) => Err(self.failed(
                &name,
                PluginError::Timeout {
                    limit_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                },
            )),
        }
    }
}
