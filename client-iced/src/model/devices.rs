//! The call devices panel: the microphones and cameras the node found,
//! and the ones its calls use, as the node reports them.

use serde_json::Value;

/// The pickers' entry for no particular device: the system's default.
pub const DEFAULT: &str = "System default";

/// What the call devices panel shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    /// The microphones to pick from, the system's default first.
    pub microphones: Vec<String>,
    /// The cameras, likewise.
    pub cameras: Vec<String>,
    /// The microphone calls use.
    pub microphone: String,
    /// The camera calls use.
    pub camera: String,
    /// Calls send GStreamer's test tone and pattern instead.
    pub test_source: bool,
    /// The node has answered.
    pub loaded: bool,
}

/// The picker's entries for `found`, with `chosen` kept even when that
/// device is not there now (unplugged: calls fail naming it until another
/// is picked).
fn choices(found: &Value, chosen: &str) -> Vec<String> {
    let mut all = vec![DEFAULT.to_owned()];
    all.extend(found.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned));
    if !all.iter().any(|d| d == chosen) {
        all.push(chosen.to_owned());
    }
    all
}

impl Devices {
    /// The panel for the node's answer to `call_devices`.
    pub fn from_node(v: &Value) -> Devices {
        let chosen = |k: &str| v[k].as_str().unwrap_or(DEFAULT).to_owned();
        let (microphone, camera) = (chosen("microphone"), chosen("camera"));
        Devices {
            microphones: choices(&v["microphones"], &microphone),
            cameras: choices(&v["cameras"], &camera),
            microphone,
            camera,
            test_source: v["test_source"].as_bool().unwrap_or(false),
            loaded: true,
        }
    }

    /// Whether the node found no device at all.
    pub fn none_found(&self) -> bool {
        self.microphones.len() == 1 && self.cameras.len() == 1
    }
}

/// The name the node takes for picker entry `shown` ("" for the default).
pub fn node_name(shown: &str) -> String {
    if shown == DEFAULT { String::new() } else { shown.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_comes_first_and_a_chosen_device_stays_listed() {
        let d = Devices::from_node(&json!({
            "microphone": null, "camera": "USB Camera",
            "microphones": ["Built-in Audio"], "cameras": ["Integrated Camera"], "test_source": false,
        }));
        assert_eq!(d.microphones, [DEFAULT, "Built-in Audio"]);
        assert_eq!(d.microphone, DEFAULT);
        // The USB camera is unplugged but still chosen: it stays in the list.
        assert_eq!(d.cameras, [DEFAULT, "Integrated Camera", "USB Camera"]);
        assert_eq!(d.camera, "USB Camera");
        assert!(d.loaded && !d.none_found());
        assert_eq!(node_name(DEFAULT), "");
        assert_eq!(node_name("USB Camera"), "USB Camera");
    }

    #[test]
    fn a_machine_without_devices_has_only_the_default() {
        let d = Devices::from_node(&json!({"microphones": [], "cameras": [], "test_source": true}));
        assert!(d.none_found() && d.test_source);
        assert_eq!((d.microphone.as_str(), d.camera.as_str()), (DEFAULT, DEFAULT));
    }
}
