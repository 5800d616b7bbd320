//! SETTINGS (RFC 9113 §6.5): the peer's, checked as they arrive, and ours.

use crate::frame::{setting, FrameError, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_MAX_FRAME_SIZE};
use crate::ErrorCode;

/// One side's settings; `Default` gives the RFC's initial values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub header_table_size: u32,
    /// SETTINGS_ENABLE_PUSH.
    pub enable_push: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS (`None`: no limit).
    pub max_concurrent_streams: Option<u32>,
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub initial_window_size: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (`None`: no limit).
    pub max_header_list_size: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            header_table_size: 4096,
            enable_push: true,
            max_concurrent_streams: None,
            initial_window_size: 65_535,
            max_frame_size: MIN_MAX_FRAME_SIZE,
            max_header_list_size: None,
        }
    }
}

impl Settings {
    /// Applies one (identifier, value) pair from the peer; unknown
    /// identifiers are ignored (§6.5.2).
    pub fn apply(&mut self, id: u16, value: u32) -> Result<(), FrameError> {
        let bad = |code, reason| Err(FrameError { code, reason });
        match id {
            setting::HEADER_TABLE_SIZE => self.header_table_size = value,
            setting::ENABLE_PUSH => match value {
                0 | 1 => self.enable_push = value == 1,
                _ => return bad(ErrorCode::PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1"),
            },
            setting::MAX_CONCURRENT_STREAMS => self.max_concurrent_streams = Some(value),
            setting::INITIAL_WINDOW_SIZE if value > MAX_WINDOW => {
                return bad(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                )
            }
            setting::INITIAL_WINDOW_SIZE => self.initial_window_size = value,
            setting::MAX_FRAME_SIZE if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) => {
                return bad(ErrorCode::PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
            }
            setting::MAX_FRAME_SIZE => self.max_frame_size = value,
            setting::MAX_HEADER_LIST_SIZE => self.max_header_list_size = Some(value),
            _ => {}
        }
        Ok(())
    }

    /// The pairs that announce these settings where they differ from the
    /// RFC's initial values.
    pub fn pairs(&self) -> Vec<(u16, u32)> {
        let initial = Settings::default();
        let mut pairs = Vec::new();
        if self.header_table_size != initial.header_table_size {
            pairs.push((setting::HEADER_TABLE_SIZE, self.header_table_size));
        }
        if self.enable_push != initial.enable_push {
            pairs.push((setting::ENABLE_PUSH, u32::from(self.enable_push)));
        }
        if let Some(max) = self.max_concurrent_streams {
            pairs.push((setting::MAX_CONCURRENT_STREAMS, max));
        }
        if self.initial_window_size != initial.initial_window_size {
            pairs.push((setting::INITIAL_WINDOW_SIZE, self.initial_window_size));
        }
        if self.max_frame_size != initial.max_frame_size {
            pairs.push((setting::MAX_FRAME_SIZE, self.max_frame_size));
        }
        if let Some(max) = self.max_header_list_size {
            pairs.push((setting::MAX_HEADER_LIST_SIZE, max));
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_connection_errors_and_unknown_ones_are_ignored() {
        let mut s = Settings::default();
        assert_eq!(
            s.apply(setting::ENABLE_PUSH, 2).unwrap_err().code,
            ErrorCode::PROTOCOL_ERROR
        );
        assert_eq!(
            s.apply(setting::INITIAL_WINDOW_SIZE, 1 << 31).unwrap_err().code,
            ErrorCode::FLOW_CONTROL_ERROR
        );
        assert_eq!(
            s.apply(setting::MAX_FRAME_SIZE, 16_383).unwrap_err().code,
            ErrorCode::PROTOCOL_ERROR
        );
        assert_eq!(
            s.apply(setting::MAX_FRAME_SIZE, 1 << 24).unwrap_err().code,
            ErrorCode::PROTOCOL_ERROR
        );
        s.apply(0xff, 7).unwrap();
        s.apply(setting::MAX_CONCURRENT_STREAMS, 100).unwrap();
        s.apply(setting::MAX_FRAME_SIZE, 1 << 20).unwrap();
        assert_eq!(s.max_concurrent_streams, Some(100));
        assert_eq!(s.max_frame_size, 1 << 20);
    }

    #[test]
    fn only_changed_values_are_announced() {
        let ours = Settings {
            enable_push: false,
            initial_window_size: 16 << 20,
            ..Settings::default()
        };
        assert_eq!(
            ours.pairs(),
            vec![(setting::ENABLE_PUSH, 0), (setting::INITIAL_WINDOW_SIZE, 16 << 20)]
        );
    }
}
