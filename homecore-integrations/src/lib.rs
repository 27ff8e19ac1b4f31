//! HomeCore's first-party integrations: native plugins compiled into the host.
//!
//! Each integration is a [`homecore_plugins::HomeCorePlugin`] with an embedded manifest and a
//! `spec()` function returning the [`homecore_plugins::PluginSpec`] to hand to the registry.
//!
//! - [`motion_lights`]: turns `light.<room>` on when `binary_sensor.<room>_motion` turns on,
//!   off after a quiet time, and counts activations in `sensor.<room>_motion_activations`.
//! - [`input_boolean`]: Home Assistant's on/off helper (`turn_on`, `turn_off`, `toggle`).
//! - [`input_number`]: Home Assistant's number helper (`set_value`, `increment`,
//!   `decrement` within `min`/`max` by `step`).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use homecore::{Attributes, Context, Home};
//! use homecore_plugins::PluginRegistry;
//!
//! let home = Home::new();
//! let registry = PluginRegistry::new(home.clone());
//! let config = serde_json::json!({"quiet_seconds": 60});
//! registry.load(homecore_integrations::motion_lights::spec()?.with_config(config)).await?;
//!
//! home.states.set(&"binary_sensor.hall_motion".parse()?, "on", Attributes::new(), &Context::new())?;
//! tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! assert_eq!(home.states.get_str("light.hall").map(|s| s.state().to_owned()), Some("on".into()));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod helper;
pub mod input_boolean;
pub mod input_number;
pub mod motion_lights;
