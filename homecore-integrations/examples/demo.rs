//! A short demo: the motion-lights plugin reacting to a motion sensor.
//!
//! `cargo run -p homecore-integrations --example demo`

use std::time::Duration;

use homecore::{Attributes, Context, Event, EventFilter, Home};
use homecore_plugins::PluginRegistry;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let config = serde_json::json!({"rooms": ["hall"], "quiet_seconds": 1.5});
    registry
        .load(homecore_integrations::motion_lights::spec()?.with_config(config))
        .await?;
    println!("loaded plugins:");
    for plugin in registry.list() {
        println!(
            "  {} {} ({:?}, {:?})",
            plugin.domain, plugin.manifest.version, plugin.runtime, plugin.lifecycle
        );
    }

    let mut changes = home.bus.subscribe([EventFilter::AllStateChanges], 256)?;
    let printer = tokio::spawn(async move {
        while let Some(Event::StateChanged(change)) = changes.recv().await {
            let new = change.new_state.as_ref().map_or("<removed>", |s| s.state());
            let by = change.context.origin.as_deref().unwrap_or("outside");
            println!(
                "  {:<38} -> {:<4} (by {by})",
                change.entity_id.as_str(),
                new
            );
        }
    });

    let motion = "binary_sensor.hall_motion".parse()?;
    println!("motion in the hall:");
    home.states
        .set(&motion, "on", Attributes::new(), &Context::new())?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("hall is quiet again (the light turns off after 1.5 s):");
    home.states
        .set(&motion, "off", Attributes::new(), &Context::new())?;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    println!("motion again:");
    home.states
        .set(&motion, "on", Attributes::new(), &Context::new())?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let info = registry
        .get("motion_lights")
        .ok_or("motion_lights is loaded")?;
    println!(
        "motion_lights: {:?}, {} events, {} errors, {} denied host calls",
        info.lifecycle, info.stats.events, info.stats.errors, info.stats.denied
    );
    registry.shutdown().await;
    printer.abort();
    Ok(())
}
