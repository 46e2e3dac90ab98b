//! STE actions: what a rule does on a hit (flow tag, counter, modify header, VLAN push and
//! pop, encapsulation and decapsulation, ASO, forwarding), encoded into the rule's last
//! match STE and, where it has no room, into added action-only STEs.

pub mod v1;

use crate::ste::SteFormat;

/// Why an action cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The STE format has no such action.
    #[error("{action} is not supported by {format}")]
    Unsupported {
        /// The action.
        action: &'static str,
        /// The format.
        format: SteFormat,
    },
}

/// Writes a cross-domain connection-tracking ASO action into the action area of a match
/// STE (`set_aso_ct_cross_dmn`): used when the CT object belongs to a peer domain.
/// `dest_reg_id` is the metadata register C index that receives the result.
pub fn set_aso_ct_cross_dmn(
    format: SteFormat,
    ste: &mut [u8],
    object_id: u32,
    offset: u32,
    dest_reg_id: u8,
    direction: bool,
) -> Result<(), ActionError> {
    match format {
        SteFormat::V0 => Err(ActionError::Unsupported {
            action: "ASO connection tracking",
            format,
        }),
        SteFormat::V1 | SteFormat::V2 => {
            let at = crate::prm::ste_match_bwc_v1::ACTION.offset / 8;
            v1::set_aso_ct(
                &mut ste[at..at + 8],
                object_id,
                offset,
                dest_reg_id,
                direction,
            );
            Ok(())
        }
    }
}
