//! The calendar data bundled into the binary (`data/calendar/*.toml`, embedded with
//! `include_str!`).

use crate::calendar::Layer;
use crate::error::CalendarError;

macro_rules! bundled_files {
    ($($name:literal),* $(,)?) => {
        /// `(file name, contents)` of every bundled calendar file.
        pub const FILES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../data/calendar/", $name))),)*
        ];
    };
}

bundled_files!(
    "sse.calendar.toml",
    "szse.calendar.toml",
    "cn-exchanges-2015.toml",
    "cn-exchanges-2016.toml",
    "cn-exchanges-2017.toml",
    "cn-exchanges-2018.toml",
    "cn-exchanges-2019.toml",
    "cn-exchanges-2020.toml",
    "cn-exchanges-2021.toml",
    "cn-exchanges-2022.toml",
    "cn-exchanges-2023.toml",
    "cn-exchanges-2024.toml",
    "cn-exchanges-2025.toml",
    "cn-exchanges-2026.toml",
);

/// The example change-window policy file (`data/calendar/policies/example.toml`).
pub const EXAMPLE_POLICIES: &str = include_str!("../../../data/calendar/policies/example.toml");

/// The built-in change-window policy (`data/calendar/policies/default.toml`), in force while an
/// installation has configured none: production blocked 09:00–15:30 on trading days.
pub const DEFAULT_POLICIES: &str = include_str!("../../../data/calendar/policies/default.toml");

/// Where [`DEFAULT_POLICIES`] comes from, for error messages.
pub const DEFAULT_POLICIES_NAME: &str = "bundled:data/calendar/policies/default.toml";

/// Parses the bundled files into a layer.
pub fn layer() -> Result<Layer, CalendarError> {
    let sources: Vec<(String, String)> = FILES
        .iter()
        .map(|(name, text)| (format!("bundled:data/calendar/{name}"), text.to_string()))
        .collect();
    Layer::from_sources("bundled", &sources)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Every `*.toml` in data/calendar is embedded (none forgotten in the list above).
    #[test]
    fn every_data_file_is_bundled() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/calendar");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut bundled: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        bundled.sort();
        assert_eq!(on_disk, bundled);
    }

    #[test]
    fn bundled_layer_parses() {
        let l = layer().unwrap();
        assert_eq!(l.files.len(), FILES.len());
    }
}
