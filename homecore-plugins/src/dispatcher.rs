//! One task per plugin: its mailbox, its calls, its failures (the supervision rules).
//!
//! Each plugin is fed through its own bounded mailbox (an event-bus subscription) by its own
//! task, so events reach it one at a time and in order, and a slow or failing plugin only ever
//! delays itself. Service calls to the plugin travel through a second, small control queue so
//! the plugin instance is only ever touched by its task.

use std::sync::Arc;
use std::time::Duration;

use homecore::{Event, Subscription};
use tokio::sync::mpsc;

use crate::call_stats::{PluginHook, timed};
use crate::control::Control;
use crate::entry::PluginEntry;
use crate::host::PluginHost;
use crate::sync::lock;
use crate::{HostError, Lifecycle, PluginContext, PluginError, PluginInstance};

/// Events taken from the mailbox per wake-up.
const BATCH: usize = 64;

/// A running plugin: its instance, its mailbox and its control queue.
pub(crate) struct PluginTask {
    pub(crate) entry: Arc<PluginEntry>,
    pub(crate) instance: Box<dyn PluginInstance>,
    pub(crate) host: Arc<PluginHost>,
    pub(crate) ctx: PluginContext,
    pub(crate) mailbox: Subscription,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) quarantine_after: u32,
    pub(crate) teardown_deadline: Duration,
}

impl PluginTask {
    /// Delivers events and service calls until stopped or quarantined.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut consecutive_failures = 0u32;
        loop {
            let next_timer = lock(&self.host.timers).next_deadline();
            tokio::select! {
                biased;
                () = sleep_until_some(next_timer) => {
                    let due = lock(&self.host.timers).take_due(tokio::time::Instant::now());
                    for (token, cause) in due {
                        let ctx = self.ctx.caused_by(&cause);
                        let (latency, plugin) = (&self.entry.counters.latency, &*self.entry.domain);
                        let call = self.instance.on_timer(&ctx, token);
                        let result = timed(latency, plugin, PluginHook::OnTimer, call).await;
                        self.settle(&mut consecutive_failures, result.as_ref().err(), false);
                        if consecutive_failures >= self.quarantine_after {
                            // The other due timers are dropped with the quarantine.
                            break;
                        }
                    }
                }
                control = self.control.recv() => match control {
                    Some(Control::CallService { call, reply }) => {
                        let ctx = self.ctx.caused_by(&call.context);
                        let (latency, plugin) = (&self.entry.counters.latency, &*self.entry.domain);
                        let service = self.instance.call_service(&ctx, &call);
                        let result = timed(latency, plugin, PluginHook::CallService, service).await;
                        self.settle(&mut consecutive_failures, result.as_ref().err(), true);
                        // The caller may have given up waiting; nothing to do then.
                        let _ = reply.send(result);
                    }
                    Some(Control::Stop { reply }) => {
                        self.stop().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.stop().await;
                        return;
                    }
                },
                received = self.mailbox.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        // The bus is gone: the home is shutting down.
                        self.stop().await;
                        return;
                    }
                    for event in batch.drain(..) {
                        let result = self.deliver(&event).await;
                        self.settle(&mut consecutive_failures, result.as_ref().err(), false);
                        if consecutive_failures >= self.quarantine_after {
                            // The rest of the batch is dropped with the drain.
                            break;
                        }
                    }
                }
            }
            if let Some(reason) = self.host.take_quarantine_request() {
                self.quarantine(format!("quarantined: {reason}")).await;
                return;
            }
            if consecutive_failures >= self.quarantine_after {
                let reason = format!(
                    "quarantined after {consecutive_failures} consecutive failures; last: {}",
                    self.entry.last_error().unwrap_or_default()
                );
                self.quarantine(reason).await;
                return;
            }
        }
    }

    /// The one supervision rule, for every hook (docs/adr/0004-plugin-runtime-and-dispatch.md):
    /// a success ends the failure streak, a failure extends it. A failed service call extends
    /// it only when the plugin itself failed (a panic, a runtime failure, a timeout); one
    /// refused for the caller's request (unknown service, invalid data, a validation error) is
    /// recorded but leaves the streak as it is, so callers cannot quarantine a plugin by
    /// sending it bad requests.
    fn settle(&self, streak: &mut u32, failure: Option<&PluginError>, caller_input: bool) {
        match failure {
            None => {
                if *streak > 0 {
                    self.entry.clear_failures();
                }
                *streak = 0;
            }
            Some(err) => {
                let plugins_fault = !caller_input
                    || matches!(
                        err,
                        PluginError::Panicked { .. }
                            | PluginError::Runtime { .. }
                            | PluginError::Timeout { .. }
                    );
                if plugins_fault {
                    *streak += 1;
                }
                self.entry.record_error(err, *streak);
            }
        }
    }

    async fn deliver(&mut self, event: &Event) -> Result<(), PluginError> {
        let ctx = self.ctx.caused_by(event.context());
        self.entry
            .counters
            .events
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (latency, plugin) = (&self.entry.counters.latency, &*self.entry.domain);
        match event {
            Event::StateChanged(change) => {
                let call = self.instance.on_state_changed(&ctx, change);
                timed(latency, plugin, PluginHook::OnStateChanged, call).await
            }
            Event::Custom(custom) => {
                let call = self.instance.on_event(&ctx, custom);
                timed(latency, plugin, PluginHook::OnEvent, call).await
            }
            _ => Ok(()),
        }
    }

    /// Teardown within the deadline, then release everything.
    async fn stop(self) {
        let PluginTask {
            entry,
            mut instance,
            host,
            ctx,
            mailbox,
            teardown_deadline,
            ..
        } = self;
        entry.set_lifecycle(Lifecycle::Stopping, None);
        // Stop receiving first so the mailbox does not fill while tearing down.
        drop(mailbox);
        let teardown = tokio::time::timeout(teardown_deadline, instance.teardown(&ctx));
        let latency = &entry.counters.latency;
        match timed(latency, &entry.domain, PluginHook::Teardown, teardown).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(plugin = %host.domain, error = %err, "teardown failed");
            }
            Err(_) => {
                tracing::warn!(plugin = %host.domain, deadline_ms = u64::try_from(teardown_deadline.as_millis()).unwrap_or(u64::MAX), "teardown missed its deadline");
            }
        }
        host.unregister_services();
        instance.unload();
        entry.set_lifecycle(Lifecycle::Stopped, None);
    }

    /// Stops delivering to a plugin that keeps failing or keeps making more than its budget
    /// allows; the reason stays visible.
    async fn quarantine(self, reason: String) {
        tracing::error!(plugin = %self.host.domain, %reason, "plugin quarantined");
        self.entry
            .counters
            .quarantines
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = Arc::clone(&self.entry);
        let mut control = self.stop_keeping_control().await;
        entry.set_lifecycle(Lifecycle::Quarantined, Some(reason));
        // Answer later control messages until the registry unloads or reloads the plugin.
        while let Some(msg) = control.recv().await {
            match msg {
                Control::CallService { reply, .. } => {
                    let _ = reply.send(Err(PluginError::Host(HostError::NotRunning {
                        plugin: entry.domain.to_string(),
                    })));
                }
                Control::Stop { reply } => {
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    async fn stop_keeping_control(mut self) -> mpsc::Receiver<Control> {
        let (_, placeholder) = mpsc::channel(1);
        let control = std::mem::replace(&mut self.control, placeholder);
        self.stop().await;
        control
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
